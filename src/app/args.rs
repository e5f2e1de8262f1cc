//! Flags shared by several commands: where the data is, where results go,
//! the split and its preprocessing, and the shape of a sweep.

use std::path::PathBuf;

use clap::Args;

use crate::data::{SplitKind, SplitSpec, Whitening};
use crate::nn::{ModelKind, Precision};
use crate::sweep::plan::SweepSettings;

/// The split and its preprocessing (`train`).
#[derive(Args, Clone)]
pub struct SplitArgs {
    /// Data split: a1 (batch 1 / batch 2 / test) or full (batches 1-5, last --n-val validate).
    #[arg(long, value_enum, default_value = "a1")]
    pub split: SplitKind,
    /// Validation images held out (split full).
    #[arg(long, default_value_t = 5000)]
    pub n_val: usize,
    /// Use only the first N training images.
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Whiten the standardised inputs: pca or zca, fitted on the training
    /// images only (the decomposition is cached, see README "Whitening").
    #[arg(long, value_enum, default_value = "none")]
    pub whiten: Whitening,
    /// Added to every eigenvalue of the training covariance before whitening
    /// (the eigenvalues of the standardised features sum to 3072).
    #[arg(long, default_value_t = crate::data::whiten::DEFAULT_WHITEN_EPS)]
    pub whiten_eps: f64,
}

impl SplitArgs {
    /// The split these flags describe.
    pub fn spec(&self) -> SplitSpec {
        SplitSpec {
            kind: self.split,
            n_val: self.n_val,
            n_train: self.n_train,
            whiten: self.whiten,
            whiten_eps: self.whiten_eps,
        }
    }
}

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

/// Settings shared by `sweep` and `search` (all optional: file, then defaults).
#[derive(Args, Clone, Default)]
pub struct SweepShape {
    /// Network: linear or mlp.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Hidden widths of the mlp.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Cycles of the cyclical schedule.
    #[arg(long)]
    pub cycles: Option<usize>,
    /// Half-cycle steps (0: 2 floor(n_train / batch)).
    #[arg(long)]
    pub ns: Option<usize>,
    /// Lowest eta.
    #[arg(long)]
    pub eta_min: Option<f64>,
    /// Highest eta.
    #[arg(long)]
    pub eta_max: Option<f64>,
    /// Mini-batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Data split (default full).
    #[arg(long, value_enum)]
    pub split: Option<SplitKind>,
    /// Validation images held out (split full).
    #[arg(long)]
    pub n_val: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Whiten the standardised inputs: pca or zca (fitted on the training images).
    #[arg(long, value_enum)]
    pub whiten: Option<Whitening>,
    /// Added to every eigenvalue before whitening (default 10).
    #[arg(long)]
    pub whiten_eps: Option<f64>,
    /// Base seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Logged points per cycle (default 5; 0: only start and end; fastest).
    #[arg(long)]
    pub log_points: Option<usize>,
    /// Training images the intermediate logged points evaluate: N (a fixed
    /// sample chosen from the seed; default 1000) or `all`. The validation set,
    /// and at the last point the training set, are always evaluated in full.
    #[arg(long, value_name = "N|all")]
    pub eval_train: Option<crate::train::EvalTrain>,
    /// Reshuffle every epoch.
    #[arg(long)]
    pub shuffle: bool,
    /// Precision.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl SweepShape {
    /// The flags given, as sweep settings (lambdas aside).
    pub fn settings(&self) -> SweepSettings {
        SweepSettings {
            model: self.model,
            hidden: self.hidden.clone(),
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
            shuffle: self.shuffle.then_some(true),
            precision: self.precision,
            eval_train: self.eval_train,
            ..Default::default()
        }
    }
}
