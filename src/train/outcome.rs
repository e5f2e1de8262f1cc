//! What training produces and reports as it goes: logged points, how a run
//! ended, its outcome, and the observer that hears of each step.

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::probs::ClassProbs;
use crate::nn::ensemble::EnsembleEval;
use crate::nn::net::Eval;
use crate::nn::LayerParams;

/// One logged point of a run's history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogPoint {
    /// Update steps done.
    pub step: usize,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Learning rate of the last step (of the first step at step 0).
    pub eta: f64,
    /// Cost, loss and accuracy on the training set (on `train_images` of it).
    pub train: Eval,
    /// Training images `train` was evaluated on: a fixed sample at intermediate
    /// points (`--eval-train`), the whole set at the last one.
    #[serde(default)]
    pub train_images: usize,
    /// Cost, loss and accuracy on the validation set.
    pub val: Eval,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trained every step.
    Done,
    /// The cost became NaN or infinite; training of this run stopped.
    Diverged,
    /// Stopped by a signal before the end; a checkpoint holds its state.
    Interrupted,
    /// Trained to a rung of successive halving and stopped there, its
    /// checkpoint kept for the next rung (never a final status).
    Paused,
    /// Stopped at a rung of successive halving, among the configurations
    /// not kept; its figures are those at that rung.
    Pruned,
}

/// Where a run diverged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Update step at which the loss was not finite.
    pub step: usize,
    /// Learning rate at that step.
    pub eta: f64,
}

/// Everything one configuration's training produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The configuration.
    pub config: RunConfig,
    /// How it ended.
    pub status: Status,
    /// Logged points.
    pub history: Vec<LogPoint>,
    /// Update steps done.
    pub steps_done: usize,
    /// Final figures on the training set.
    pub train: Eval,
    /// Final figures on the validation set.
    pub val: Eval,
    /// Final figures on the test set.
    pub test: Eval,
    /// Divergence point, when diverged.
    pub diverged: Option<Divergence>,
    /// Wall time of the group this run trained in, seconds.
    pub wall_s: f64,
    /// Milliseconds per update step of the group (training only, without evaluation).
    pub ms_per_step: f64,
    /// Configurations trained in lockstep with this one (C).
    pub group_size: usize,
    /// Trained parameters per layer (W: w_out x w_in, b: w_out), empty unless done.
    #[serde(skip)]
    pub weights: Vec<LayerParams>,
    /// The run's averaged prediction (done runs with `snapshots` > 0 or `tta`):
    /// its snapshots' probabilities, each on the images and their mirrors with
    /// test-time flips.
    #[serde(default)]
    pub averaged: Option<EnsembleEval>,
    /// Validation and test class probabilities (`save_probs`, done runs): the
    /// averaged prediction's when there is one, else the final net's.
    #[serde(skip)]
    pub probs: Option<ClassProbs>,
}

/// Receives progress from the loop; implementations must be cheap (atomics).
pub trait Observer: Sync {
    /// After each step; `ids` are the configurations' indices in the caller's plan.
    fn on_step(&self, _ids: &[usize], _steps_done: usize, _etas: &[f64]) {}
    /// After each logged point of configuration `id`.
    fn on_log(&self, _id: usize, _point: &LogPoint) {}
    /// When configuration `id` finished (any status).
    fn on_done(&self, _id: usize, _outcome: &RunOutcome) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}
