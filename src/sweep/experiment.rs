//! The assignments' fixed experiments as plans of runs, and their summary files.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::data::{SplitKind, SplitSpec};
use crate::nn::{Loss, Precision};
use crate::train::output::RunResult;
use crate::train::{RunConfig, Schedule};
use crate::util::{write_atomic, write_json};

/// Assignment 1: linear classifier, 40 epochs, batch 100, split a1, the four
/// (lambda, eta) settings of the assignment.
pub fn a1_configs(seed: u64, precision: Precision) -> Vec<RunConfig> {
    [(0.0, 0.1), (0.0, 0.001), (0.1, 0.001), (1.0, 0.001)]
        .iter()
        .map(|&(lambda, eta)| RunConfig {
            name: format!("a1_lambda{lambda}_eta{eta}"),
            hidden: vec![],
            loss: Loss::Ce,
            lambda,
            schedule: Schedule::Fixed { eta },
            batch: 100,
            steps: 40 * 100,
            shuffle: false,
            seed,
            split: SplitSpec {
                kind: SplitKind::A1,
                ..Default::default()
            },
            precision,
            log_every: 100,
            save_weights: true,
        })
        .collect()
}

/// Assignment 2: m = 50, lambda 0.01, batch 100, split a1, cyclical eta in
/// [1e-5, 1e-1]: one cycle with n_s = 500 and three cycles with n_s = 800, ten
/// logged points per cycle.
pub fn a2_configs(seed: u64, precision: Precision) -> Vec<RunConfig> {
    [(500usize, 1usize), (800, 3)]
        .iter()
        .map(|&(ns, cycles)| RunConfig {
            name: format!("a2_ns{ns}_cycles{cycles}"),
            hidden: vec![50],
            loss: Loss::Ce,
            lambda: 0.01,
            schedule: Schedule::Cyclic {
                eta_min: 1e-5,
                eta_max: 1e-1,
                ns,
            },
            batch: 100,
            steps: 2 * ns * cycles,
            shuffle: false,
            seed,
            split: SplitSpec {
                kind: SplitKind::A1,
                ..Default::default()
            },
            precision,
            log_every: 2 * ns / 10,
            save_weights: false,
        })
        .collect()
}

/// One row of an experiment's summary (accuracies as fractions 0-1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Run name.
    pub name: String,
    /// L2 penalty.
    pub lambda: f64,
    /// Peak learning rate.
    pub eta: f64,
    /// Final training accuracy.
    pub train_acc: f64,
    /// Final validation accuracy.
    pub val_acc: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Update steps.
    pub steps: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// done or diverged.
    pub status: crate::train::Status,
}

/// An experiment's summary: `summary.json` and what `--json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Runs in plan order.
    pub runs: Vec<SummaryRow>,
    /// Wall time of the whole experiment.
    pub wall_s: f64,
}

impl Summary {
    /// Builds the summary of results in plan order.
    pub fn new(results: &[RunResult], wall_s: f64) -> Self {
        let runs = results
            .iter()
            .map(|r| SummaryRow {
                name: r.name.clone(),
                lambda: r.lambda,
                eta: r.eta,
                train_acc: r.train_acc,
                val_acc: r.val_acc,
                test_acc: r.test_acc,
                steps: r.steps,
                wall_s: r.wall_s,
                status: r.status,
            })
            .collect();
        Summary { runs, wall_s }
    }

    /// Markdown table in plan order.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| run | lambda | eta | train acc % | val acc % | test acc % | steps | seconds |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.runs {
            s.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.2} |\n",
                r.name,
                r.lambda,
                r.eta,
                100.0 * r.train_acc,
                100.0 * r.val_acc,
                100.0 * r.test_acc,
                r.steps,
                r.wall_s
            ));
        }
        s
    }

    /// Writes `summary.json` and `results.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("summary.json"), self)?;
        write_atomic(&dir.join("results.md"), self.markdown().as_bytes())
    }
}
