//! Every setting of a training run as a person gives it (flags, TOML, sweep
//! axes), and the one translation of those settings into a [`RunConfig`]:
//! `shallow train`, sweeps and searches all go through [`TrainSettings::run_config`].

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::config::{EvalTrain, RunConfig};
use super::schedule::Schedule;
use crate::data::SplitSpec;
use crate::nn::{Loss, ModelKind, Precision};

/// Default logged points per cycle of a sweep. With [`SWEEP_EVAL_TRAIN`] the
/// curves cost about 9% of the training's GEMM work (each point evaluates the
/// 5,000 validation images and 1,000 training images per configuration, against
/// 2 x 100 images per training step): 16 points over 3 cycles of n_s 900.
pub const SWEEP_LOG_POINTS: usize = 5;

/// Default `--eval-train` of a sweep: 1,000 training images at intermediate points.
pub const SWEEP_EVAL_TRAIN: EvalTrain = EvalTrain::Sample(1000);

/// The one table of the settings a person gives: each setting's name (its
/// flag `--name` with dashes, its TOML key), type, help, clap attributes and
/// sweep axis, once. `setting_table!(callback)` hands the table to a
/// generator macro: `app::args` makes the flags of every training command
/// from it (`SettingsArgs`, a boolean's `--no-X` included), `sweep::plan` the
/// TOML layer (`SweepSettings`: its fields, `over` and `fixed_axes`). Values
/// are `Option<T>` (not given: the command's default, see
/// [`TrainSettings::train_default`] and [`TrainSettings::sweep_default`]);
/// switches are booleans with a `--no-` flag that turns off what a file
/// turned on. docs/settings.md says how to add one.
macro_rules! setting_table {
    ($callback:ident) => {
        $callback! {
            values {
                /// Network: linear or mlp [train: linear; sweep: mlp].
                model: crate::nn::ModelKind [value_enum];
                /// Hidden widths of the mlp, e.g. 50 or 100,50 [50].
                hidden: Vec<usize> [value_delimiter = ','] => Hidden;
                /// Output loss: ce or bce [ce].
                loss: crate::nn::Loss [value_enum] => Loss;
                /// L2 penalty lambda [train: 0].
                lambda: f64 [allow_negative_numbers = true] => Lambda;
                /// Schedule: fixed, decay or cyclic [inferred from the settings given:
                /// --eta/--epochs fixed, --decay-* decay, --cycles/--ns/--eta-min/--eta-max
                /// cyclic; else train: fixed, sweep: cyclic].
                schedule: crate::train::settings::ScheduleKind [value_enum];
                /// Fixed learning rate, or the initial one with --decay-factor [0.001].
                eta: f64 [allow_negative_numbers = true] => Eta;
                /// Step decay: multiply eta by this every --decay-every epochs.
                decay_factor: f64 [] => DecayFactor;
                /// Step decay: epochs between decays [10].
                decay_every: usize [] => DecayEvery;
                /// Epochs of the fixed and decay schedules [40].
                epochs: usize [] => Epochs;
                /// Update steps (overrides --epochs and --cycles).
                steps: usize [] => Steps;
                /// Cyclical schedule: lowest eta [1e-5].
                eta_min: f64 [allow_negative_numbers = true] => EtaMin;
                /// Cyclical schedule: highest eta [1e-1].
                eta_max: f64 [allow_negative_numbers = true] => EtaMax;
                /// Cyclical schedule: half-cycle steps n_s; 0: 2 floor(n_train / batch)
                /// [train: 500; sweep: 0].
                ns: usize [] => Ns;
                /// Cyclical schedule: number of cycles [train: 1; sweep: 2].
                cycles: usize [] => Cycles;
                /// Mini-batch size [100].
                batch: usize [] => Batch;
                /// Data split: a1 (batch 1 / batch 2 / test) or full (batches 1-5, the
                /// last --n-val validate) [train: a1; sweep: full].
                split: crate::data::SplitKind [value_enum];
                /// Validation images held out (split full) [5000].
                n_val: usize [];
                /// Use only the first N training images.
                n_train: usize [];
                /// Whiten the standardised inputs: pca or zca, fitted on the training
                /// images only (the decomposition is cached, see docs/data.md) [none].
                whiten: crate::data::Whitening [value_enum];
                /// Added to every eigenvalue of the training covariance before whitening
                /// (the eigenvalues of the standardised features sum to 3072) [10].
                whiten_eps: f64 [];
                /// Base seed of initialisation and shuffling [1].
                seed: u64 [] => Seed;
                /// Logged points per cycle (cyclical; fixed and decay log every epoch);
                /// 0: only the start and the end [train: 10; sweep: 5].
                log_points: usize [];
                /// Training images the intermediate logged points evaluate: N (a fixed
                /// sample chosen from the seed) or `all`. The validation set, and at the
                /// last point the training set, are always evaluated in full
                /// [train: 5000; sweep: 1000].
                eval_train: crate::train::EvalTrain [value_name = "N|all"];
                /// Floating-point precision: f32, f64, bf16 (mixed: layer 0's two big
                /// products in bf16 with f32 sums, on CPUs with AVX512-BF16), int16
                /// (those products as 16-bit integer products of the pixels, on CPUs
                /// with AVX2) or fast (the fastest of f32, bf16 and int16 here) [f32].
                precision: crate::nn::Precision [value_enum];
                /// Augmentation: shift each training image by up to K pixels in x and y [0].
                translate: usize [value_name = "K"] => Translate;
                /// Augmentation: what fills the pixels a translation uncovers: zero (the
                /// mean pixel) or reflect [zero].
                pad: crate::data::Pad [value_enum];
                /// Inverted dropout: probability of dropping each hidden unit in training [0].
                dropout: f64 [value_name = "P"] => Dropout;
                /// Label smoothing: softmax targets (1 - eps) one-hot + eps / 10 [0].
                label_smoothing: f64 [value_name = "EPS"] => LabelSmoothing;
                /// Seed-ensemble member: another initialisation with the same data order
                /// (sweep `--grid member=0:7:8:lin` trains eight in one lockstep group) [0].
                member: u64 [value_name = "N"] => Member;
                /// Snapshot ensemble: also evaluate the averaged softmax of the nets at the
                /// ends of the last N cycles [0].
                snapshots: usize [value_name = "N"] => Snapshots;
                /// SGD with momentum MU (v <- MU v + gradient, W <- W - eta v); scale the
                /// learning rates down by about 1 - MU [0: plain SGD].
                momentum: f64 [value_name = "MU"] => Momentum;
            }
            switches {
                /// Reshuffle the training set every epoch.
                shuffle, no_shuffle;
                /// Save the trained weights as .npy.
                save_weights, no_save_weights;
                /// Augmentation: flip each training image left-right with probability 1/2.
                flip, no_flip => Flip;
                /// Batch normalisation on every hidden layer (batch statistics in training,
                /// running averages in evaluation).
                batch_norm, no_batch_norm => BatchNorm;
                /// Save the validation and test class probabilities (val_probs.npy,
                /// test_probs.npy) for ensembles across runs.
                save_probs, no_save_probs;
                /// Test-time flips: the averaged prediction (and --save-probs) averages
                /// each validation and test image with its mirror image.
                tta, no_tta => Tta;
            }
        }
    };
}
pub(crate) use setting_table;

/// Which learning-rate schedule a run follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// A fixed eta for `--epochs` (Assignment 1).
    Fixed,
    /// eta multiplied by `--decay-factor` every `--decay-every` epochs.
    Decay,
    /// Triangular cycles between eta_min and eta_max (Assignment 2).
    Cyclic,
}

/// Every hyperparameter of a run, as given: the flat config of `shallow train`
/// and the fixed settings of a sweep, which its axes vary one field at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// linear (no hidden layer) or mlp.
    pub model: ModelKind,
    /// Hidden widths of the mlp, input side first.
    pub hidden: Vec<usize>,
    /// Output loss.
    pub loss: Loss,
    /// L2 penalty.
    pub lambda: f64,
    /// Schedule kind.
    pub schedule: ScheduleKind,
    /// Fixed (or initial, with decay) learning rate.
    pub eta: f64,
    /// Step decay factor.
    pub decay_factor: f64,
    /// Epochs between decays.
    pub decay_every: usize,
    /// Cycles of the cyclical schedule.
    pub cycles: usize,
    /// Lowest eta of the cyclical schedule.
    pub eta_min: f64,
    /// Highest eta of the cyclical schedule.
    pub eta_max: f64,
    /// Half-cycle steps (0: 2 floor(n_train / batch)).
    pub ns: usize,
    /// Epochs of the fixed and decay schedules.
    pub epochs: usize,
    /// Update steps; overrides epochs and cycles when set.
    pub steps: Option<usize>,
    /// Logged points per cycle (cyclic) or, when not 0, one per epoch
    /// (fixed, decay); 0 logs only the start and the end.
    pub log_points: usize,
    /// Training images the intermediate logged points evaluate.
    pub eval_train: EvalTrain,
    /// Mini-batch size.
    pub batch: usize,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Base seed.
    pub seed: u64,
    /// Data split and preprocessing.
    pub split: SplitSpec,
    /// Floating-point precision.
    pub precision: Precision,
    /// Save the trained weights as .npy.
    pub save_weights: bool,
    /// Flips and translations of the training images.
    #[serde(default)]
    pub augment: crate::data::Augment,
    /// Dropout probability of hidden units.
    #[serde(default)]
    pub dropout: f64,
    /// Label smoothing of the cross-entropy targets.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Batch normalisation on the hidden layers.
    #[serde(default)]
    pub batch_norm: bool,
    /// Seed-ensemble member (0: the plain run).
    #[serde(default)]
    pub member: u64,
    /// Snapshot ensemble of the last N cycles' nets.
    #[serde(default)]
    pub snapshots: usize,
    /// Save the validation and test class probabilities.
    #[serde(default)]
    pub save_probs: bool,
    /// SGD momentum (0: plain SGD).
    #[serde(default)]
    pub momentum: f64,
    /// Test-time flips in the averaged prediction.
    #[serde(default)]
    pub tta: bool,
}

impl TrainSettings {
    /// The defaults of `shallow train`: Assignment 1's linear classifier, fixed
    /// eta 0.001 for 40 epochs on the a1 split.
    pub fn train_default() -> Self {
        TrainSettings {
            model: ModelKind::Linear,
            hidden: vec![50],
            loss: Loss::Ce,
            lambda: 0.0,
            schedule: ScheduleKind::Fixed,
            eta: 0.001,
            decay_factor: 1.0,
            decay_every: 10,
            cycles: 1,
            eta_min: 1e-5,
            eta_max: 1e-1,
            ns: 500,
            epochs: 40,
            steps: None,
            log_points: 10,
            eval_train: super::config::DEFAULT_EVAL_TRAIN,
            batch: 100,
            shuffle: false,
            seed: 1,
            split: SplitSpec::default(),
            precision: Precision::F32,
            save_weights: false,
            augment: Default::default(),
            dropout: 0.0,
            label_smoothing: 0.0,
            batch_norm: false,
            member: 0,
            snapshots: 0,
            save_probs: false,
            momentum: 0.0,
            tta: false,
        }
    }

    /// The defaults of a sweep: Assignment 2's network (mlp 50), 2 cycles of
    /// 1e-5..1e-1 with n_s = 2 epochs, on 45,000 / 5,000 images, 5 logged points
    /// per cycle on a 1,000-image training sample.
    pub fn sweep_default() -> Self {
        TrainSettings {
            model: ModelKind::Mlp,
            schedule: ScheduleKind::Cyclic,
            cycles: 2,
            ns: 0,
            log_points: SWEEP_LOG_POINTS,
            eval_train: SWEEP_EVAL_TRAIN,
            split: SplitSpec {
                kind: crate::data::SplitKind::Full,
                ..Default::default()
            },
            ..Self::train_default()
        }
    }

    /// These settings for the data set `data`: its sizes recorded in the
    /// split, and the split `full`'s default validation count fitted to it
    /// (5,000, or a tenth of fewer than 50,000 training images).
    pub fn for_data(mut self, data: crate::data::DataShape) -> Self {
        if self.split.n_val == crate::data::SplitSpec::default().n_val {
            self.split.n_val = data.default_n_val();
        }
        self.split.data = data;
        self
    }

    /// Hidden widths as trained: none for the linear model.
    pub fn widths(&self) -> Vec<usize> {
        match self.model {
            ModelKind::Linear => vec![],
            ModelKind::Mlp => self.hidden.clone(),
        }
    }

    /// Update steps per epoch (the last partial batch is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        (self.split.train_len() / self.batch.max(1)).max(1)
    }

    /// Half-cycle length in steps, resolving `ns = 0` to two epochs.
    pub fn resolved_ns(&self) -> usize {
        if self.ns == 0 {
            2 * self.steps_per_epoch()
        } else {
            self.ns
        }
    }

    /// The run configuration named `name` these settings describe: schedule,
    /// steps and logging resolved, nothing validated yet ([`RunConfig::validate`]).
    pub fn run_config(&self, name: &str) -> Result<RunConfig> {
        let per_epoch = self.steps_per_epoch();
        // Step counts multiply settings: beyond MAX_STEPS they are refused,
        // never wrapped around.
        let steps_of = |a: usize, b: usize| -> Result<usize> {
            a.checked_mul(b)
                .filter(|&n| n <= crate::train::config::MAX_STEPS)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{a} x {b} update steps is more than the {} of one run: give fewer --epochs, --cycles or --ns",
                        crate::train::config::MAX_STEPS
                    )
                })
        };
        if self.ns > crate::train::config::MAX_STEPS {
            bail!(
                "--ns {}: a half cycle of at most {} steps",
                self.ns,
                crate::train::config::MAX_STEPS
            );
        }
        let (schedule, steps, log_every) = match self.schedule {
            ScheduleKind::Cyclic => {
                if self.cycles == 0 && self.steps.is_none() {
                    bail!("--cycles 0: train at least one cycle");
                }
                let ns = self.resolved_ns();
                let every = (2 * ns)
                    .checked_div(self.log_points)
                    .map_or(0, |e| e.max(1));
                (
                    Schedule::Cyclic {
                        eta_min: self.eta_min,
                        eta_max: self.eta_max,
                        ns,
                    },
                    steps_of(2 * ns, self.cycles)?,
                    every,
                )
            }
            ScheduleKind::Fixed | ScheduleKind::Decay => {
                let schedule = if self.schedule == ScheduleKind::Decay {
                    Schedule::StepDecay {
                        eta: self.eta,
                        factor: self.decay_factor,
                        every_steps: steps_of(self.decay_every.max(1), per_epoch)?,
                    }
                } else {
                    Schedule::Fixed { eta: self.eta }
                };
                let every = if self.log_points == 0 { 0 } else { per_epoch };
                (schedule, steps_of(self.epochs, per_epoch)?, every)
            }
        };
        Ok(RunConfig {
            name: name.to_string(),
            hidden: self.widths(),
            loss: self.loss,
            lambda: self.lambda,
            schedule,
            batch: self.batch,
            steps: self.steps.unwrap_or(steps),
            shuffle: self.shuffle,
            seed: self.seed,
            split: self.split,
            precision: self
                .precision
                .resolved(self.split.whiten != crate::data::Whitening::None),
            log_every,
            save_weights: self.save_weights,
            eval_train: self.eval_train,
            augment: self.augment,
            dropout: self.dropout,
            label_smoothing: self.label_smoothing,
            batch_norm: self.batch_norm,
            member: self.member,
            snapshots: self.snapshots,
            save_probs: self.save_probs,
            momentum: self.momentum,
            tta: self.tta,
        })
    }

    /// Sets `axis` to `value` (a sweep's axes go through here).
    pub fn set(&mut self, axis: Axis, value: &Value) -> Result<()> {
        let num = || -> Result<f64> {
            match value {
                Value::Num(v) => Ok(*v),
                other => bail!("{}: {} is not a number", axis.name(), other.label()),
            }
        };
        let int = || -> Result<usize> {
            let v = num()?;
            if v < 0.0 || v.fract() != 0.0 || !v.is_finite() {
                bail!("{}: {v} is not a whole number >= 0", axis.name());
            }
            Ok(v as usize)
        };
        match axis {
            Axis::Lambda => self.lambda = num()?,
            Axis::Eta => self.eta = num()?,
            Axis::EtaMin => self.eta_min = num()?,
            Axis::EtaMax => self.eta_max = num()?,
            Axis::DecayFactor => self.decay_factor = num()?,
            Axis::Ns => self.ns = int()?,
            Axis::Cycles => self.cycles = int()?,
            Axis::Epochs => self.epochs = int()?,
            Axis::Steps => self.steps = Some(int()?),
            Axis::DecayEvery => self.decay_every = int()?,
            Axis::Batch => self.batch = int()?,
            Axis::Seed => self.seed = int()? as u64,
            Axis::Flip => self.augment.flip = int()? != 0,
            Axis::Translate => self.augment.translate = int()?,
            Axis::Dropout => self.dropout = num()?,
            Axis::LabelSmoothing => self.label_smoothing = num()?,
            Axis::BatchNorm => self.batch_norm = int()? != 0,
            Axis::Member => self.member = int()? as u64,
            Axis::Snapshots => self.snapshots = int()?,
            Axis::Momentum => self.momentum = num()?,
            Axis::Tta => self.tta = int()? != 0,
            Axis::Hidden => match value {
                Value::Widths(w) => {
                    self.hidden = w.clone();
                    self.model = ModelKind::Mlp;
                }
                Value::Num(_) => {
                    self.hidden = vec![int()?];
                    self.model = ModelKind::Mlp;
                }
                other => bail!("hidden: {} is not a list of widths", other.label()),
            },
            Axis::Loss => match value {
                Value::Loss(l) => self.loss = *l,
                other => bail!("loss: {} is not ce or bce", other.label()),
            },
        }
        Ok(())
    }
}

/// A setting a sweep can vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// L2 penalty (scale).
    Lambda,
    /// Fixed eta (scale; selects the fixed schedule).
    Eta,
    /// Cyclical lowest eta (scale).
    EtaMin,
    /// Cyclical highest eta (scale).
    EtaMax,
    /// Step decay factor.
    DecayFactor,
    /// Half-cycle steps.
    Ns,
    /// Cycles.
    Cycles,
    /// Epochs (fixed and decay schedules).
    Epochs,
    /// Update steps.
    Steps,
    /// Epochs between decays.
    DecayEvery,
    /// Hidden widths, e.g. 50 or 100x50.
    Hidden,
    /// Mini-batch size.
    Batch,
    /// Output loss: ce or bce.
    Loss,
    /// Base seed (repeats).
    Seed,
    /// Random horizontal flips: 0 (off) or 1 (on).
    Flip,
    /// Random translations of up to this many pixels.
    Translate,
    /// Dropout probability of hidden units.
    Dropout,
    /// Label smoothing eps.
    LabelSmoothing,
    /// Batch normalisation: 0 (off) or 1 (on).
    BatchNorm,
    /// Seed-ensemble member index (members of one sweep train in lockstep).
    Member,
    /// Snapshots averaged (last cycles).
    Snapshots,
    /// SGD momentum.
    Momentum,
    /// Test-time flips: 0 (off) or 1 (on).
    Tta,
}

/// Every axis, in the order their names are listed in messages.
pub const AXES: [Axis; 23] = [
    Axis::Lambda,
    Axis::Eta,
    Axis::EtaMin,
    Axis::EtaMax,
    Axis::DecayFactor,
    Axis::Ns,
    Axis::Cycles,
    Axis::Epochs,
    Axis::Steps,
    Axis::DecayEvery,
    Axis::Hidden,
    Axis::Batch,
    Axis::Loss,
    Axis::Seed,
    Axis::Flip,
    Axis::Translate,
    Axis::Dropout,
    Axis::LabelSmoothing,
    Axis::BatchNorm,
    Axis::Member,
    Axis::Snapshots,
    Axis::Momentum,
    Axis::Tta,
];

impl Axis {
    /// The name used by flags and TOML, e.g. `eta_max`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Lambda => "lambda",
            Axis::Eta => "eta",
            Axis::EtaMin => "eta_min",
            Axis::EtaMax => "eta_max",
            Axis::DecayFactor => "decay_factor",
            Axis::Ns => "ns",
            Axis::Cycles => "cycles",
            Axis::Epochs => "epochs",
            Axis::Steps => "steps",
            Axis::DecayEvery => "decay_every",
            Axis::Hidden => "hidden",
            Axis::Batch => "batch",
            Axis::Loss => "loss",
            Axis::Seed => "seed",
            Axis::Flip => "flip",
            Axis::Translate => "translate",
            Axis::Dropout => "dropout",
            Axis::LabelSmoothing => "label_smoothing",
            Axis::BatchNorm => "batch_norm",
            Axis::Member => "member",
            Axis::Snapshots => "snapshots",
            Axis::Momentum => "momentum",
            Axis::Tta => "tta",
        }
    }

    /// The axis named `name` (`eta-max` and `eta_max` alike); the error lists them all.
    pub fn parse(name: &str) -> Result<Axis> {
        let n = name.trim().replace('-', "_").to_ascii_lowercase();
        let n = if n == "n_s" { "ns".to_string() } else { n };
        AXES.iter().copied().find(|a| a.name() == n).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown sweep axis `{name}`: use one of {}",
                AXES.map(|a| a.name()).join(", ")
            )
        })
    }

    /// Whether values spread over decades (learning rates, lambda): ranges
    /// default to log spacing, random draws are log-uniform, plots use a log axis.
    pub fn is_scale(self) -> bool {
        matches!(self, Axis::Lambda | Axis::Eta | Axis::EtaMin | Axis::EtaMax)
    }

    /// Whether values are whole numbers.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Axis::Ns
                | Axis::Cycles
                | Axis::Epochs
                | Axis::Steps
                | Axis::DecayEvery
                | Axis::Batch
                | Axis::Seed
                | Axis::Flip
                | Axis::Translate
                | Axis::BatchNorm
                | Axis::Member
                | Axis::Snapshots
                | Axis::Tta
        )
    }

    /// The schedule an axis belongs to, if it belongs to one.
    pub fn schedule(self) -> Option<ScheduleKind> {
        match self {
            Axis::Eta | Axis::Epochs => Some(ScheduleKind::Fixed),
            Axis::DecayFactor | Axis::DecayEvery => Some(ScheduleKind::Decay),
            Axis::EtaMin | Axis::EtaMax | Axis::Ns | Axis::Cycles => Some(ScheduleKind::Cyclic),
            _ => None,
        }
    }

    /// Parses one value of this axis, e.g. `0.1`, `100x50` (hidden), `bce` (loss).
    pub fn parse_value(self, s: &str) -> Result<Value> {
        let s = s.trim();
        match self {
            Axis::Loss => match s.to_ascii_lowercase().as_str() {
                "ce" => Ok(Value::Loss(Loss::Ce)),
                "bce" => Ok(Value::Loss(Loss::Bce)),
                _ => bail!("loss {s}: use ce or bce"),
            },
            Axis::Flip | Axis::BatchNorm | Axis::Tta => match s.to_ascii_lowercase().as_str() {
                "1" | "on" | "true" | "yes" => Ok(Value::Num(1.0)),
                "0" | "off" | "false" | "no" => Ok(Value::Num(0.0)),
                _ => bail!("{} {s}: use 0 or 1 (off or on)", self.name()),
            },
            Axis::Hidden => {
                let widths: Result<Vec<usize>, _> =
                    s.split(['x', 'X', '+']).map(|w| w.trim().parse()).collect();
                match widths {
                    Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(Value::Widths(w)),
                    _ => bail!(
                        "hidden {s}: give widths of at least 1, one layer (50) or several (100x50)"
                    ),
                }
            }
            _ => {
                let v: f64 = s
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{} {s}: not a number", self.name()))?;
                if !v.is_finite() || v < 0.0 {
                    bail!("{} {s}: give a finite value >= 0", self.name());
                }
                if self.is_integer() && v.fract() != 0.0 {
                    bail!("{} {s}: give a whole number", self.name());
                }
                Ok(Value::Num(v))
            }
        }
    }
}

/// One value of an axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A number (lambda, learning rates, counts, seed).
    Num(f64),
    /// Hidden widths.
    Widths(Vec<usize>),
    /// An output loss.
    Loss(Loss),
}

impl Value {
    /// Short text for names, tables and plots: `0.001`, `1.00e-5`, `100x50`, `bce`.
    pub fn label(&self) -> String {
        match self {
            Value::Num(v) => crate::util::short_number(*v),
            Value::Widths(w) => w
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("x"),
            Value::Loss(l) => l.name().to_string(),
        }
    }

    /// The value as a number on a plot's axis (a one-layer width counts as one).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Num(v) => Some(*v),
            Value::Widths(w) if w.len() == 1 => Some(w[0] as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_defaults_give_assignment_one() {
        let c = TrainSettings::train_default().run_config("run").unwrap();
        assert!(c.hidden.is_empty());
        assert_eq!(c.schedule, Schedule::Fixed { eta: 0.001 });
        assert_eq!((c.steps, c.log_every), (4000, 100));
    }

    /// Every listed axis names itself, parses a value, and that value changes
    /// the run it is set on (under the schedule it belongs to).
    #[test]
    fn every_axis_parses_and_changes_its_run() {
        for axis in AXES {
            assert_eq!(Axis::parse(axis.name()).unwrap(), axis);
            let text = match axis {
                Axis::Loss => "bce",
                Axis::Hidden => "7x5",
                Axis::Flip | Axis::BatchNorm | Axis::Tta => "1",
                a if a.is_integer() => "17",
                _ => "0.37",
            };
            let mut base = TrainSettings::sweep_default();
            if let Some(kind) = axis.schedule() {
                base.schedule = kind;
            }
            let mut set = base.clone();
            set.set(axis, &axis.parse_value(text).unwrap()).unwrap();
            assert_ne!(
                set.run_config("x").unwrap(),
                base.run_config("x").unwrap(),
                "{} = {text} changes nothing",
                axis.name()
            );
        }
    }

    #[test]
    fn axes_set_their_field_and_refuse_wrong_kinds() {
        let mut s = TrainSettings::sweep_default();
        s.set(Axis::Hidden, &Axis::Hidden.parse_value("100x50").unwrap())
            .unwrap();
        s.set(Axis::EtaMax, &Value::Num(0.2)).unwrap();
        s.set(Axis::Steps, &Value::Num(30.0)).unwrap();
        let c = s.run_config("x").unwrap();
        assert_eq!(c.hidden, vec![100, 50]);
        assert_eq!(c.schedule.eta_peak(), 0.2);
        assert_eq!(c.steps, 30);
        assert!(s.set(Axis::Batch, &Value::Num(2.5)).is_err());
        assert!(s.set(Axis::Loss, &Value::Num(2.0)).is_err());
        assert!(Axis::Hidden.parse_value("0").is_err());
        assert!(Axis::Batch.parse_value("1.5").is_err());
        let e = Axis::parse("etamax").unwrap_err().to_string();
        assert!(e.contains("eta_max"), "{e}");
        assert_eq!(Axis::parse("eta-max").unwrap(), Axis::EtaMax);
    }
}
