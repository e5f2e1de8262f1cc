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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EvalTrain {
    /// The whole training set at every logged point.
    #[default]
    All,
    /// At intermediate points, a fixed sample of this many training images,
    /// chosen once from the seed (the whole set when it has no more); the last
    /// point evaluates the whole set.
    Sample(usize),
}

/// What the configurations of one lockstep group share: they read the same
/// batches in the same order (seed, shuffle, augmentation, batch, split),
/// stack into one network (architecture, loss, batch norm, momentum,
/// precision) and stop and log together (steps, logging). The rest of a
/// [`RunConfig`] may differ per configuration: lambda, the schedule's rates,
/// dropout, label smoothing, member, snapshots, test-time flips, what is
/// saved. Groups are formed by equal keys ([`crate::sweep::group_configs`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockstepKey {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Output loss.
    pub loss: Loss,
    /// Mini-batch size.
    pub batch: usize,
    /// Update steps.
    pub steps: usize,
    /// Reshuffled every epoch.
    pub shuffle: bool,
    /// Base seed (the data order and the evaluation sample).
    pub seed: u64,
    /// Steps between logged points.
    pub log_every: usize,
    /// The data split.
    pub split: SplitKey,
    /// Floating-point precision.
    pub precision: Precision,
    /// Training images a logged point evaluates.
    pub eval_train: EvalTrain,
    /// Flips and translations, drawn per batch slot.
    pub augment: crate::data::Augment,
    /// Batch normalisation.
    pub batch_norm: bool,
    /// The momentum's bits (0 for plain SGD).
    pub momentum_bits: u64,
}

/// A [`SplitSpec`] as a key: the whitening eps by its bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SplitKey {
    /// Which split.
    pub kind: crate::data::SplitKind,
    /// Validation images held out.
    pub n_val: usize,
    /// Training images kept.
    pub n_train: Option<usize>,
    /// Whitening.
    pub whiten: crate::data::Whitening,
    /// Whitening eps, `f64::to_bits`.
    pub whiten_eps_bits: u64,
}

/// Version of [`RunConfig::init_seed_key`], the text initial weights are
/// seeded from. Version 1 is the encoding every result so far was trained with.
pub const INIT_SEED_ENCODING: u32 = 1;

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
        Arch::for_data(&self.split.data, &self.hidden, self.loss).with_batch_norm(self.batch_norm)
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
    /// hyperparameters ([`Self::init_seed_key`]), never from scheduling or grouping.
    pub fn init_seed(&self) -> u64 {
        derive_seed(self.seed, &self.init_seed_key())
    }

    /// What the initial-weight seed hashes, in encoding
    /// [`INIT_SEED_ENCODING`]: hidden widths, loss, lambda, schedule and batch,
    /// and the ensemble member past the first (member 0 is the plain run),
    /// each written out by hand. A new encoding would change every initial
    /// weight, so it gets a new version and its own commit.
    pub fn init_seed_key(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|w| w.to_string()).collect();
        let key = format!(
            "hidden=[{}];loss={};lambda={:e};schedule={};batch={}",
            hidden.join(", "),
            self.loss.name(),
            self.lambda,
            self.schedule.seed_key(),
            self.batch
        );
        if self.member > 0 {
            format!("{key};member={}", self.member)
        } else {
            key
        }
    }

    /// Seed of the data order (shuffling), shared by configurations with the same base seed.
    pub fn data_seed(&self) -> u64 {
        derive_seed(self.seed, "data-order")
    }

    /// What configurations must share to train in lockstep (see
    /// [`LockstepKey`]); everything else may differ per configuration.
    pub fn lockstep_key(&self) -> LockstepKey {
        let split = self.split;
        LockstepKey {
            hidden: self.hidden.clone(),
            loss: self.loss,
            batch: self.batch,
            steps: self.steps,
            shuffle: self.shuffle,
            seed: self.seed,
            log_every: self.log_every,
            split: SplitKey {
                kind: split.kind,
                n_val: split.n_val,
                n_train: split.n_train,
                whiten: split.whiten,
                whiten_eps_bits: split.whiten_eps.to_bits(),
            },
            precision: self.precision,
            eval_train: self.eval_train,
            augment: self.augment,
            batch_norm: self.batch_norm,
            // 0 and -0 are both plain SGD.
            momentum_bits: if self.momentum > 0.0 {
                self.momentum.to_bits()
            } else {
                0
            },
        }
    }

    /// Checks every value, with a message naming the flag and a fix.
    pub fn validate(&self, n_train: usize) -> Result<()> {
        match self.precision {
            crate::nn::Precision::Bf16 => crate::linalg::bf16::require().map(|_| ())?,
            crate::nn::Precision::Int16 => {
                crate::linalg::int16::require()?;
                if self.split.whiten != crate::data::Whitening::None {
                    bail!(
                        "--precision int16 multiplies the pixels' bytes, and --whiten {} mixes them into \
                         non-integer features: use --precision f32 or bf16 with whitening",
                        self.split.whiten.name()
                    );
                }
            }
            _ => {}
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
        let image = self.split.data.image;
        let side = image.height.min(image.width);
        if self.augment.translate > 0 && self.augment.translate >= side {
            bail!(
                "--translate {} shifts images of {} x {} pixels by up to that many pixels: give 0 to {}, e.g. {}",
                self.augment.translate,
                image.height,
                image.width,
                side.saturating_sub(1),
                (side / 8).max(1).min(side.saturating_sub(1))
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

    /// Whether training reads its batches from the images converted once per
    /// process for its kernel ([`crate::data::DataSet::packed_bf16`],
    /// [`crate::data::DataSet::packed_int16`]): bf16 or int16 on consecutive
    /// batches of an even size. Shuffled or augmented batches are packed each
    /// step instead.
    pub fn reads_packed(&self) -> bool {
        matches!(
            self.precision,
            crate::nn::Precision::Bf16 | crate::nn::Precision::Int16
        ) && !self.shuffle
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding 1 gives the seeds every reference figure was trained with
    /// (each read from a run folder written before the encoding was spelt out).
    #[test]
    fn initial_weight_seeds_are_those_of_encoding_1() {
        assert_eq!(INIT_SEED_ENCODING, 1);
        let a2 = RunConfig::a2(500, 1);
        assert_eq!(
            a2.init_seed_key(),
            "hidden=[50];loss=ce;lambda=1e-2;schedule=Cyclic { eta_min: 1e-5, eta_max: 0.1, ns: 500 };batch=100"
        );
        assert_eq!(a2.init_seed(), 9875304519996970961);
        assert_eq!(RunConfig::a1(0.1, 0.001).init_seed(), 10002248032327215551);
        let member = RunConfig {
            hidden: vec![64],
            lambda: 0.001,
            schedule: Schedule::Cyclic {
                eta_min: 1e-5,
                eta_max: 0.1,
                ns: 40,
            },
            member: 1,
            ..a2.clone()
        };
        assert!(member.init_seed_key().ends_with(";batch=100;member=1"));
        assert_eq!(member.init_seed(), 6469903030897597553);
        let decay = RunConfig {
            hidden: vec![],
            lambda: 0.0,
            schedule: Schedule::StepDecay {
                eta: 0.01,
                factor: 0.5,
                every_steps: 100,
            },
            ..a2.clone()
        };
        assert_eq!(decay.init_seed(), 12290274285657819994);
        let range = Schedule::Exponential {
            eta_lo: 1e-7,
            eta_hi: 1.0,
            steps: 300,
        };
        assert_eq!(
            range.seed_key(),
            "Exponential { eta_lo: 1e-7, eta_hi: 1.0, steps: 300 }"
        );
        assert_eq!(
            Schedule::Fixed { eta: 0.001 }.seed_key(),
            "Fixed { eta: 0.001 }"
        );
    }

    /// Groups form on what must be shared, never on what may differ.
    #[test]
    fn the_lockstep_key_holds_what_a_group_shares_only() {
        let a = RunConfig::default();
        let differs_per_run = [
            RunConfig {
                lambda: 0.5,
                ..a.clone()
            },
            RunConfig {
                dropout: 0.3,
                label_smoothing: 0.1,
                member: 2,
                snapshots: 1,
                tta: true,
                save_probs: true,
                save_weights: true,
                name: "other".into(),
                ..a.clone()
            },
        ];
        for b in &differs_per_run {
            assert_eq!(a.lockstep_key(), b.lockstep_key());
        }
        let shared = [
            RunConfig {
                batch: 50,
                ..a.clone()
            },
            RunConfig {
                momentum: 0.9,
                ..a.clone()
            },
            RunConfig {
                hidden: vec![60],
                ..a.clone()
            },
            RunConfig {
                seed: 2,
                ..a.clone()
            },
            RunConfig {
                batch_norm: true,
                ..a.clone()
            },
        ];
        for b in &shared {
            assert_ne!(a.lockstep_key(), b.lockstep_key());
        }
        // Plain SGD is one key, however its momentum of 0 is written.
        let minus_zero = RunConfig {
            momentum: -0.0,
            ..a.clone()
        };
        assert_eq!(a.lockstep_key(), minus_zero.lockstep_key());
    }
}
