//! Coarse-to-fine lambda search (Assignment 2): a coarse sweep, a fine sweep in
//! a narrow log range around the best coarse lambda, then a final training with
//! the best lambda on more data, reporting test accuracy.

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::plan::{LambdaSpec, SweepSpec};
use super::results::{best, write_tables};
use super::{run_configs, Dashboard, DisplayMode, RunnerOptions};
use crate::data::{Cifar10, SplitKind, SplitSpec};
use crate::train::output::RunResult;
use crate::train::{Control, Status};
use crate::util::{write_atomic, write_json};

/// Settings of a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// The coarse sweep (its lambdas, cycles, split...).
    pub coarse: SweepSpec,
    /// Lambdas of the fine sweep.
    pub fine_n: usize,
    /// Cycles of the fine sweep.
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best coarse lambda, in decades.
    pub fine_decades: f64,
    /// Cycles of the final run.
    pub final_cycles: usize,
    /// Validation images held out in the final run.
    pub final_n_val: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        let coarse = SweepSpec {
            prefix: "coarse".into(),
            lambdas: LambdaSpec::Random {
                lo: 1e-5,
                hi: 1e-1,
                n: 8,
                seed: 1,
            },
            cycles: 2,
            ns: 900,
            ..SweepSpec::default()
        };
        SearchOptions {
            coarse,
            fine_n: 8,
            fine_cycles: 3,
            fine_decades: 0.5,
            final_cycles: 3,
            final_n_val: 1000,
        }
    }
}

/// What a search found, written as `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchSummary {
    /// Coarse results in plan order.
    pub coarse: Vec<RunResult>,
    /// Fine results in plan order.
    pub fine: Vec<RunResult>,
    /// The final run.
    pub final_run: RunResult,
    /// Best lambda of the coarse sweep.
    pub best_coarse_lambda: f64,
    /// Fine range searched.
    pub fine_range: (f64, f64),
    /// Best lambda of the fine sweep, used in the final run.
    pub best_lambda: f64,
    /// Wall seconds per stage: coarse, fine, final.
    pub stage_s: [f64; 3],
}

impl SearchSummary {
    /// Markdown summary.
    pub fn markdown(&self) -> String {
        let f = &self.final_run;
        format!(
            "| stage | runs | best lambda | best val acc % | seconds |\n|---|---:|---:|---:|---:|\n\
             | coarse | {} | {:.3e} | {:.2} | {:.1} |\n| fine ({:.2e}..{:.2e}) | {} | {:.3e} | {:.2} | {:.1} |\n\
             | final | 1 | {:.3e} | {:.2} | {:.1} |\n\nFinal test accuracy: **{:.2}%** (lambda {:.3e}, {} steps).\n",
            self.coarse.len(),
            self.best_coarse_lambda,
            100.0 * best(&self.coarse).map_or(f64::NAN, |r| r.val_acc),
            self.stage_s[0],
            self.fine_range.0,
            self.fine_range.1,
            self.fine.len(),
            self.best_lambda,
            100.0 * best(&self.fine).map_or(f64::NAN, |r| r.val_acc),
            self.stage_s[1],
            f.lambda,
            100.0 * f.val_acc,
            self.stage_s[2],
            100.0 * f.test_acc,
            f.lambda,
            f.steps
        )
    }
}

/// Runs the three stages into `runner.out`/{coarse,fine,final}. Returns `None`
/// when interrupted (checkpoints kept for `resume`).
pub fn search(
    data: &Cifar10,
    opts: &SearchOptions,
    runner: &RunnerOptions,
    control: &Control,
    mode: DisplayMode,
) -> Result<Option<SearchSummary>> {
    let stage = |name: &str, spec: &SweepSpec| -> Result<(Vec<RunResult>, f64)> {
        let t0 = std::time::Instant::now();
        let configs = spec.configs();
        let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
        dashboard.println(&format!(
            "== {name} stage: {} run{}, {} cycle{} of n_s {}, {} training images",
            configs.len(),
            if configs.len() == 1 { "" } else { "s" },
            spec.cycles,
            if spec.cycles == 1 { "" } else { "s" },
            configs
                .first()
                .map_or(spec.ns, |c| c.steps / (2 * spec.cycles.max(1))),
            spec.split.train_len()
        ));
        let out = runner.out.join(name);
        let r = RunnerOptions {
            out: out.clone(),
            ..runner.clone()
        };
        let results = run_configs(&configs, data, &r, control, &dashboard)?;
        write_tables(&out, &results)?;
        Ok((results, t0.elapsed().as_secs_f64()))
    };
    let interrupted = |r: &[RunResult]| r.iter().any(|r| r.status == Status::Interrupted);
    let (coarse, t_coarse) = stage("coarse", &opts.coarse)?;
    if interrupted(&coarse) {
        return Ok(None);
    }
    let Some(best_coarse) = best(&coarse).map(|r| r.lambda) else {
        bail!("every coarse run diverged: lower --eta-max");
    };
    let lo = best_coarse * 10f64.powf(-opts.fine_decades);
    let hi = best_coarse * 10f64.powf(opts.fine_decades);
    let fine_spec = SweepSpec {
        prefix: "fine".into(),
        lambdas: LambdaSpec::Random {
            lo,
            hi,
            n: opts.fine_n,
            seed: opts.coarse.seed.wrapping_add(1),
        },
        cycles: opts.fine_cycles,
        ..opts.coarse.clone()
    };
    let (fine, t_fine) = stage("fine", &fine_spec)?;
    if interrupted(&fine) {
        return Ok(None);
    }
    let best_lambda = best(&fine).map_or(best_coarse, |r| r.lambda);
    let final_spec = SweepSpec {
        prefix: "final".into(),
        lambdas: LambdaSpec::List(vec![best_lambda]),
        cycles: opts.final_cycles,
        split: SplitSpec {
            kind: SplitKind::Full,
            n_val: opts.final_n_val,
            n_train: None,
            ..opts.coarse.split
        },
        ns: 0,
        ..opts.coarse.clone()
    };
    let (mut fin, t_final) = stage("final", &final_spec)?;
    if interrupted(&fin) {
        return Ok(None);
    }
    let summary = SearchSummary {
        coarse,
        fine,
        final_run: fin.remove(0),
        best_coarse_lambda: best_coarse,
        fine_range: (lo, hi),
        best_lambda,
        stage_s: [t_coarse, t_fine, t_final],
    };
    write_json(&runner.out.join("summary.json"), &summary)?;
    write_atomic(
        &runner.out.join("summary.md"),
        summary.markdown().as_bytes(),
    )?;
    Ok(Some(summary))
}

/// Reads a finished search's summary.
pub fn load_summary(dir: &Path) -> Result<SearchSummary> {
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("summary.json"),
    )?)?)
}
