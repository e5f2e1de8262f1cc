//! The files a run leaves in its folder: config.json, metrics.csv, result.json,
//! and optionally its weights and preprocessing as .npy. Every file is written
//! to a temporary name and renamed. Its pictures (curves, weight images) are
//! drawn by `report`, which the runner is handed as a [`DrawRun`]: the layers
//! below `report` never import it.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::group::{Divergence, RunOutcome, Status};
use super::RunConfig;
use crate::util::{create_dir, write_atomic, write_json};

/// Contents of `config.json`: the configuration plus where and how it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedConfig {
    /// Every hyperparameter.
    #[serde(flatten)]
    pub config: RunConfig,
    /// Initialisation seed derived from the base seed and the hyperparameters.
    pub init_seed: u64,
    /// Data folder.
    pub data_dir: String,
    /// Training / validation / test images.
    pub sizes: [usize; 3],
    /// shallow's version.
    pub version: String,
    /// BLAS threads per call: always 1 (the big products are cut into fixed
    /// blocks instead, see `nn::blas::gemm_blocks`).
    pub blas_threads: usize,
    /// Cores the process used (`--threads`); the numbers do not depend on it.
    #[serde(default)]
    pub threads: usize,
    /// Groups trained at once (`--jobs`); the numbers do not depend on it.
    #[serde(default)]
    pub jobs: usize,
    /// Most configurations per lockstep group (`--max-group`): it decides the
    /// groups, and so the GEMM shapes and the last bits of the numbers.
    #[serde(default)]
    pub max_group: usize,
    /// BLAS build.
    pub blas: String,
    /// The kernel family OpenBLAS ran, e.g. `SkylakeX`.
    #[serde(default)]
    pub blas_kernel: String,
    /// Who chose that kernel: OpenBLAS's detection, the environment
    /// (`OPENBLAS_CORETYPE`), or shallow on a CPU OpenBLAS did not recognise.
    #[serde(default)]
    pub blas_kernel_source: String,
    /// What computed layer 0's two big products: OpenBLAS, or with
    /// `--precision bf16` shallow's AVX512-BF16 kernel.
    #[serde(default)]
    pub layer0_kernel: String,
}

pub use crate::util::nan_from_null;

/// Contents of `result.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// Run name.
    pub name: String,
    /// done, diverged or interrupted.
    pub status: Status,
    /// L2 penalty.
    #[serde(deserialize_with = "nan_from_null")]
    pub lambda: f64,
    /// Peak learning rate.
    #[serde(deserialize_with = "nan_from_null")]
    pub eta: f64,
    /// Schedule description.
    pub schedule: String,
    /// Update steps done.
    pub steps: usize,
    /// Final training accuracy (0-1).
    #[serde(deserialize_with = "nan_from_null")]
    pub train_acc: f64,
    /// Final validation accuracy (0-1).
    #[serde(deserialize_with = "nan_from_null")]
    pub val_acc: f64,
    /// Test accuracy (0-1).
    #[serde(deserialize_with = "nan_from_null")]
    pub test_acc: f64,
    /// Final training cost.
    #[serde(deserialize_with = "nan_from_null")]
    pub train_cost: f64,
    /// Final validation cost.
    #[serde(deserialize_with = "nan_from_null")]
    pub val_cost: f64,
    /// Test cost.
    #[serde(deserialize_with = "nan_from_null")]
    pub test_cost: f64,
    /// Wall time, seconds.
    #[serde(deserialize_with = "nan_from_null")]
    pub wall_s: f64,
    /// Milliseconds per update step (training only).
    #[serde(deserialize_with = "nan_from_null")]
    pub ms_per_step: f64,
    /// Configurations trained in lockstep with it.
    pub group_size: usize,
    /// Where it diverged, if it did.
    pub diverged: Option<Divergence>,
    /// The run's averaged prediction (snapshots and/or test-time flips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaged: Option<crate::nn::ensemble::EnsembleEval>,
}

impl RunResult {
    /// The result of a configuration whose group was never started (the
    /// command was interrupted first): no step, no figures, no files.
    pub fn not_started(config: &RunConfig) -> Self {
        RunResult {
            name: config.name.clone(),
            status: Status::Interrupted,
            lambda: config.lambda,
            eta: config.schedule.eta_peak(),
            schedule: config.schedule.describe(),
            steps: 0,
            train_acc: f64::NAN,
            val_acc: f64::NAN,
            test_acc: f64::NAN,
            train_cost: f64::NAN,
            val_cost: f64::NAN,
            test_cost: f64::NAN,
            wall_s: 0.0,
            ms_per_step: f64::NAN,
            group_size: 0,
            diverged: None,
            averaged: None,
        }
    }

    /// Summarises an outcome.
    pub fn from_outcome(o: &RunOutcome) -> Self {
        RunResult {
            name: o.config.name.clone(),
            status: o.status,
            lambda: o.config.lambda,
            eta: o.config.schedule.eta_peak(),
            schedule: o.config.schedule.describe(),
            steps: o.steps_done,
            train_acc: o.train.acc,
            val_acc: o.val.acc,
            test_acc: o.test.acc,
            train_cost: o.train.cost,
            val_cost: o.val.cost,
            test_cost: o.test.cost,
            wall_s: o.wall_s,
            ms_per_step: o.ms_per_step,
            group_size: o.group_size,
            diverged: o.diverged,
            averaged: o.averaged,
        }
    }
}

/// CSV of the history: one row per logged point.
pub fn metrics_csv(o: &RunOutcome) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "step",
        "epoch",
        "eta",
        "train_cost",
        "train_loss",
        "train_acc",
        "train_images",
        "val_cost",
        "val_loss",
        "val_acc",
    ])?;
    for p in &o.history {
        w.write_record(&[
            p.step.to_string(),
            format!("{:.4}", p.epoch),
            format!("{:e}", p.eta),
            p.train.cost.to_string(),
            p.train.loss.to_string(),
            p.train.acc.to_string(),
            p.train_images.to_string(),
            p.val.cost.to_string(),
            p.val.loss.to_string(),
            p.val.acc.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Encodes an array as a NumPy .npy file of f32 (what `np.load` reads, and
/// `ndarray_npy::read_npy` reads back).
pub fn npy_f32<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> Result<Vec<u8>> {
    use ndarray_npy::WriteNpyExt;
    let mut out = Vec::new();
    a.mapv(|v| v as f32).write_npy(&mut out)?;
    Ok(out)
}

/// Draws a finished run's pictures into its folder (given: the folder, the
/// outcome, the class names); `report::run_pictures` is the one shallow uses.
pub type DrawRun = fn(&Path, &RunOutcome, &[String]) -> Result<()>;

/// Writes the run folder `dir`'s data files (pictures: [`DrawRun`]).
pub fn write_run(
    dir: &Path,
    o: &RunOutcome,
    saved: &SavedConfig,
    (preprocess, class_names): (&crate::data::Preprocess, &[String]),
) -> Result<RunResult> {
    create_dir(dir)?;
    crate::folder::record(dir, crate::folder::FolderKind::Run)?;
    write_json(&dir.join("config.json"), saved)?;
    write_atomic(&dir.join("metrics.csv"), &metrics_csv(o)?)?;
    if o.status == Status::Done && o.config.save_weights {
        for (l, p) in o.weights.iter().enumerate() {
            write_atomic(&dir.join(format!("W{}.npy", l + 1)), &npy_f32(&p.w)?)?;
            // b as a column (w_out x 1): it adds to W x with x one image per column.
            let b = p.b.clone().insert_axis(ndarray::Axis(1));
            write_atomic(&dir.join(format!("b{}.npy", l + 1)), &npy_f32(&b)?)?;
        }
        // Without the preprocessing the weights cannot be applied to raw images.
        preprocess.save(dir)?;
        let model = super::model::Model {
            arch: o.config.arch(),
            layers: o.weights.clone(),
            preprocess: preprocess.clone(),
            class_names: if class_names.len() == o.config.split.data.classes {
                class_names.to_vec()
            } else {
                (0..o.config.split.data.classes)
                    .map(|k| k.to_string())
                    .collect()
            },
            image: o.config.split.data.image,
            precision: o.config.precision.name().to_string(),
            tta: o.config.tta,
            snapshots: o.config.snapshots,
        };
        write_atomic(
            &dir.join(super::model::MODEL_FILE),
            &model.to_safetensors()?,
        )?;
    }
    if let Some(p) = &o.probs {
        super::probs::write(dir, p)?;
    }
    let result = RunResult::from_outcome(o);
    write_json(&dir.join("result.json"), &result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_result_reads_back_with_its_nan_costs() {
        let r = RunResult {
            name: "x".into(),
            status: Status::Diverged,
            lambda: 0.01,
            eta: 0.3,
            schedule: "eta 0.3".into(),
            steps: 9,
            train_acc: f64::NAN,
            val_acc: f64::NAN,
            test_acc: f64::NAN,
            train_cost: f64::INFINITY,
            val_cost: f64::NAN,
            test_cost: f64::NAN,
            wall_s: 1.0,
            ms_per_step: 0.5,
            group_size: 1,
            diverged: None,
            averaged: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"train_cost\":null"), "{text}");
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert!(back.train_cost.is_nan() && back.val_acc.is_nan());
        assert_eq!(
            (back.lambda, back.steps, back.status),
            (0.01, 9, Status::Diverged)
        );
    }
}
