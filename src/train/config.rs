//! One flat run configuration: every hyperparameter of a training run, saved
//! beside its results as `config.json`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use crate::data::SplitSpec;
use crate::nn::{Arch, Loss, Precision};
use crate::train::TrainSettings;
use crate::util::derive_seed;

/// Every hyperparameter of one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Run name (folder name inside an experiment or sweep).
    pub name: String,
    /// Hidden widths; empty for the linear classifier.
    pub hidden: Vec<usize>,
    /// Output loss.
    pub loss: Loss,
    /// L2 penalty lambda.
    pub lambda: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Mini-batch size.
    pub batch: usize,
    /// Total update steps.
    pub steps: usize,
    /// Reshuffle the training set every epoch (seeded).
    pub shuffle: bool,
    /// Base seed; the initialisation seed derives from it and the hyperparameters,
    /// the data order from it alone (so configurations that share it can train in lockstep).
    pub seed: u64,
    /// Data split.
    pub split: SplitSpec,
    /// Floating-point precision.
    pub precision: Precision,
    /// Evaluate on the training and validation sets every this many steps (0: only
    /// at the start and the end).
    pub log_every: usize,
    /// Save the trained weights as .npy files.
    pub save_weights: bool,
    /// Training images the intermediate logged points evaluate (the last point
    /// always evaluates the whole training set).
    #[serde(default)]
    pub eval_train: EvalTrain,
    /// Flips and translations of the training images, drawn as each batch is
    /// gathered (shared by a lockstep group, like the data order).
    #[serde(default)]
    pub augment: crate::data::Augment,
    /// Probability of dropping each hidden unit in training (inverted dropout), 0 for none.
    #[serde(default)]
    pub dropout: f64,
    /// Label smoothing eps of the cross-entropy targets, 0 for none.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Batch normalisation on every hidden layer.
    #[serde(default)]
    pub batch_norm: bool,
    /// Seed-ensemble member: members differ only in their initial weights (and
    /// dropout masks), so they share the data order and train in one lockstep group.
    #[serde(default)]
    pub member: u64,
    /// Snapshot ensemble: average the softmax of the nets at the end of the last
    /// this many cycles (cyclic schedule), 0 for none.
    #[serde(default)]
    pub snapshots: usize,
    /// Test-time flips: the run's averaged prediction (and saved probabilities)
    /// averages each validation and test image with its mirror image.
    #[serde(default)]
    pub tta: bool,
    /// SGD with momentum mu (0: plain SGD); the same for a whole lockstep group.
    #[serde(default)]
    pub momentum: f64,
    /// Save the validation and test class probabilities (val_probs.npy,
    /// test_probs.npy: images x classes) for ensembles across runs.
    #[serde(default)]
    pub save_probs: bool,
}

/// Which training images a logged point evaluates: the curves' cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EvalTrain {
    /// The whole training set at every logged point.
    #[default]
    All,
    /// At intermediate points, a fixed sample of this many training images,
    /// chosen once from the seed (the whole set when it has no more); the last
    /// point evaluates the whole set.
    Sample(usize),
}

/// Default of `--eval-train`: at intermediate logged points, 5,000 training
/// images (a tenth of the full split) and the whole validation set.
pub const DEFAULT_EVAL_TRAIN: EvalTrain = EvalTrain::Sample(5000);

/// Images per chunk when evaluating whole sets.
pub const EVAL_CHUNK: usize = 2000;

/// Most update steps of one run (about ten days at a millisecond a step):
/// step counts beyond it are typing errors, and would overflow.
pub const MAX_STEPS: usize = 1_000_000_000;

impl EvalTrain {
    /// Images evaluated at an intermediate point out of `n_train`.
    pub fn images(&self, n_train: usize) -> usize {
        match *self {
            EvalTrain::All => n_train,
            EvalTrain::Sample(n) => n.min(n_train),
        }
    }
}

impl std::str::FromStr for EvalTrain {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(EvalTrain::All);
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(EvalTrain::Sample(n)),
            _ => Err(format!(
                "--eval-train {s}: give a number of training images (at least 1), or `all`"
            )),
        }
    }
}

impl std::fmt::Display for EvalTrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalTrain::All => write!(f, "all"),
            EvalTrain::Sample(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for EvalTrain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EvalTrain::All => s.serialize_str("all"),
            EvalTrain::Sample(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for EvalTrain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(n) => format!("{n}").parse().map_err(serde::de::Error::custom),
            Repr::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A preset's configuration, through the one translation of settings into a
/// run ([`TrainSettings::run_config`]); presets are constants that translate.
fn preset(settings: &TrainSettings, name: &str) -> RunConfig {
    settings
        .run_config(name)
        .expect("the assignments' presets are valid settings")
}

impl Default for RunConfig {
    /// Assignment 2's first run ([`RunConfig::a2`] with n_s 500, one cycle):
    /// the base that presets and tests change a few fields of, e.g.
    /// `RunConfig { lambda: 0.1, ..RunConfig::default() }`.
    fn default() -> Self {
        RunConfig::a2(500, 1)
    }
}

impl RunConfig {
    /// Assignment 1: the linear classifier with L2 penalty `lambda` and fixed
    /// learning rate `eta`, 40 epochs of batch 100 on the a1 split, logged
    /// every epoch, its weights saved.
    pub fn a1(lambda: f64, eta: f64) -> Self {
        let settings = TrainSettings {
            lambda,
            eta,
            save_weights: true,
            eval_train: EvalTrain::All,
            ..TrainSettings::train_default()
        };
        preset(&settings, &format!("a1_lambda{lambda}_eta{eta}"))
    }

    /// Assignment 2: m = 50, lambda 0.01, batch 100 on the a1 split,
    /// cyclical eta in [1e-5, 1e-1] with half-cycle `ns` for `cycles` cycles,
    /// ten logged points per cycle.
    pub fn a2(ns: usize, cycles: usize) -> Self {
        let settings = TrainSettings {
            model: crate::nn::ModelKind::Mlp,
            lambda: 0.01,
            schedule: crate::train::ScheduleKind::Cyclic,
            ns,
            cycles,
            eval_train: EvalTrain::All,
            ..TrainSettings::train_default()
        };
        preset(&settings, &format!("a2_ns{ns}_cycles{cycles}"))
    }

    /// The architecture on CIFAR-10 inputs.
    pub fn arch(&self) -> Arch {
        Arch::cifar(&self.hidden, self.loss).with_batch_norm(self.batch_norm)
    }

    /// About how many bytes training this configuration in a group holds:
    /// its weights and biases (with momentum their velocities, and a copy for
    /// its result), and its share of the activations and gradients of a
    /// training batch and an evaluation chunk. A lower bound, for refusing
    /// a network that cannot fit before anything is allocated.
    pub fn memory_bytes(&self) -> u64 {
        let arch = self.arch();
        let elem: u64 = if self.precision == crate::nn::Precision::F64 {
            8
        } else {
            4
        };
        let mut widths = vec![arch.input as u64];
        widths.extend(arch.hidden.iter().map(|&h| h as u64));
        widths.push(arch.classes as u64);
        let params: u64 = widths
            .windows(2)
            .map(|w| w[0].saturating_mul(w[1]).saturating_add(w[1]))
            .fold(0, u64::saturating_add);
        let copies = 2 + u64::from(self.momentum > 0.0);
        let units: u64 = widths[1..].iter().sum();
        let columns = (self.batch + EVAL_CHUNK) as u64;
        elem.saturating_mul(
            params
                .saturating_mul(copies)
                .saturating_add(units.saturating_mul(columns).saturating_mul(2)),
        )
    }

    /// The regularisers of a training pass, with the dropout masks seeded from
    /// this configuration's initial seed.
    pub fn step_regs(&self) -> crate::nn::net::StepRegs {
        crate::nn::net::StepRegs {
            drop: self.dropout,
            smoothing: self.label_smoothing,
            mask_seed: derive_seed(self.init_seed(), "dropout"),
        }
    }

    /// End steps of the cycles whose nets the snapshot ensemble averages (empty
    /// without one).
    pub fn snapshot_steps(&self) -> Vec<usize> {
        match self.schedule {
            Schedule::Cyclic { ns, .. } if self.snapshots > 0 && ns > 0 => {
                let period = 2 * ns;
                let cycles = self.steps / period;
                (cycles.saturating_sub(self.snapshots) + 1..=cycles)
                    .map(|k| k * period)
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Seed of this configuration's initial weights: from the base seed and the
    /// hyperparameters, never from scheduling or grouping.
    pub fn init_seed(&self) -> u64 {
        let key = format!(
            "hidden={:?};loss={};lambda={:e};schedule={:?};batch={}",
            self.hidden,
            self.loss.name(),
            self.lambda,
            self.schedule,
            self.batch
        );
        // Members past the first get their own weights; member 0 is the plain run.
        let key = if self.member > 0 {
            format!("{key};member={}", self.member)
        } else {
            key
        };
        derive_seed(self.seed, &key)
    }

    /// Seed of the data order (shuffling), shared by configurations with the same base seed.
    pub fn data_seed(&self) -> u64 {
        derive_seed(self.seed, "data-order")
    }

    /// Key of the settings that configurations must share to train in lockstep:
    /// architecture, batch, step count, data order and augmentation, logging,
    /// split and precision. (Lambda and the learning rates may differ.)
    pub fn lockstep_key(&self) -> String {
        format!(
            "{:?}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{}{}",
            self.hidden,
            self.loss.name(),
            self.batch,
            self.steps,
            self.shuffle,
            self.seed,
            self.log_every,
            self.split,
            self.precision,
            self.eval_train,
            // Without augmentation the key is what it always was.
            if self.augment.is_on() {
                format!("|{:?}", self.augment)
            } else {
                String::new()
            }
        ) + if self.batch_norm { "|batch-norm" } else { "" }
            + &if self.momentum > 0.0 {
                format!("|momentum={:e}", self.momentum)
            } else {
                String::new()
            }
    }

    /// Checks every value, with a message naming the flag and a fix.
    pub fn validate(&self, n_train: usize) -> Result<()> {
        if self.precision == crate::nn::Precision::Bf16 {
            crate::linalg::bf16::require()?;
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            bail!(
                "--lambda {} must be a finite value >= 0, e.g. 0.01",
                self.lambda
            );
        }
        self.schedule.validate()?;
        self.split.validate()?;
        let eps = self.split.whiten_eps;
        if self.split.whiten != crate::data::Whitening::None && !(eps.is_finite() && eps > 0.0) {
            bail!(
                "--whiten-eps {eps} is out of range: give a positive number such as {}",
                crate::data::whiten::DEFAULT_WHITEN_EPS
            );
        }
        let peak = self.schedule.eta_peak();
        if 2.0 * peak * self.lambda >= 1.0 {
            bail!(
                "--lambda {} with learning rate {peak} makes the weight decay factor 1 - 2 eta lambda <= 0: \
                 lower lambda or eta",
                self.lambda
            );
        }
        if self.batch == 0 || self.batch > n_train {
            bail!(
                "--batch {} must be between 1 and the {n_train} training images",
                self.batch
            );
        }
        if self.steps == 0 {
            bail!("the run has no update step: give --epochs, --steps or --cycles of at least 1");
        }
        if !(0.0..=0.9).contains(&self.dropout) {
            bail!(
                "--dropout {} is out of range: give the probability of dropping a hidden unit, from 0 to 0.9, e.g. 0.2",
                self.dropout
            );
        }
        if self.dropout > 0.0 && self.hidden.is_empty() {
            bail!("--dropout applies to hidden layers: give --hidden, or drop --dropout");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!(
                "--momentum {} is out of range: give a value from 0 (plain SGD) to below 1, e.g. 0.9",
                self.momentum
            );
        }
        if self.batch_norm && self.hidden.is_empty() {
            bail!("--batch-norm normalises hidden layers: give --hidden, or drop --batch-norm");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!(
                "--label-smoothing {} is out of range: give a value from 0 to below 1, e.g. 0.1",
                self.label_smoothing
            );
        }
        if self.label_smoothing > 0.0 && self.loss != Loss::Ce {
            bail!("--label-smoothing smooths the softmax targets: use it with --loss ce");
        }
        if self.snapshots > 0 {
            match self.schedule {
                Schedule::Cyclic { ns, .. } if ns > 0 => {
                    let cycles = self.steps / (2 * ns);
                    if self.snapshots > cycles {
                        bail!(
                            "--snapshots {} exceeds the run's {cycles} complete cycles: give at most {cycles}",
                            self.snapshots
                        );
                    }
                }
                _ => bail!(
                    "--snapshots averages the nets at the ends of cycles: use it with the cyclic schedule (--cycles)"
                ),
            }
        }
        if self.augment.translate >= crate::data::augment::SIDE {
            bail!(
                "--translate {} shifts images of {side} x {side} pixels by up to that many pixels: give 0 to {}, e.g. 4",
                self.augment.translate,
                crate::data::augment::SIDE - 1,
                side = crate::data::augment::SIDE
            );
        }
        if self.steps > MAX_STEPS {
            bail!(
                "the run has {} update steps, more than the {MAX_STEPS} shallow trains: give fewer --epochs, --cycles, --ns or --steps",
                self.steps
            );
        }
        if self.hidden.contains(&0) {
            bail!(
                "--hidden {:?}: every hidden layer needs at least one unit",
                self.hidden
            );
        }
        Ok(())
    }

    /// Update steps per epoch over `n_train` images (the last partial batch is dropped).
    pub fn steps_per_epoch(&self, n_train: usize) -> usize {
        (n_train / self.batch).max(1)
    }

    /// Whether training reads its batches from the images converted to bf16
    /// once per process ([`crate::data::DataSet::packed_bf16`]): bf16 on
    /// consecutive batches of an even size. Shuffled or augmented batches are
    /// packed each step instead.
    pub fn reads_packed_bf16(&self) -> bool {
        self.precision == crate::nn::Precision::Bf16
            && !self.shuffle
            && !self.augment.is_on()
            && self.batch.is_multiple_of(2)
    }

    /// Short description for titles, e.g. `mlp [50], lambda 0.01, cyclic ...`.
    pub fn describe(&self) -> String {
        let model = if self.hidden.is_empty() {
            "linear".to_string()
        } else {
            format!("mlp {:?}", self.hidden)
        };
        let whiten = match self.split.whiten {
            crate::data::Whitening::None => String::new(),
            w => format!(", {} whitened (eps {})", w.name(), self.split.whiten_eps),
        };
        let augment = if self.augment.is_on() {
            format!(", augmented: {}", self.augment.describe())
        } else {
            String::new()
        };
        let mut extras = String::new();
        if self.batch_norm {
            extras += ", batch norm";
        }
        if self.dropout > 0.0 {
            extras += &format!(", dropout {}", self.dropout);
        }
        if self.label_smoothing > 0.0 {
            extras += &format!(", label smoothing {}", self.label_smoothing);
        }
        if self.tta {
            extras += ", test-time flips";
        }
        if self.momentum > 0.0 {
            extras += &format!(", momentum {}", self.momentum);
        }
        if self.member > 0 {
            extras += &format!(", member {}", self.member);
        }
        if self.snapshots > 0 {
            extras += &format!(", {} snapshots", self.snapshots);
        }
        format!(
            "{model}, lambda {}, {}, batch {}{whiten}{augment}{extras}",
            crate::util::short_number(self.lambda),
            self.schedule.describe(),
            self.batch
        )
    }
}
