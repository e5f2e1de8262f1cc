//! Runs a plan: lockstep groups spread over a rayon pool, one BLAS thread per
//! worker (or every core for BLAS when a single group runs), the data shared.
//! Interrupted groups leave a checkpoint per configuration; `resume` skips
//! finished configurations and continues checkpointed ones.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;

use super::plan::group_by_key;
use super::Dashboard;
use crate::data::Split;
use crate::nn::{blas, Real};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::output::{metrics_csv, write_run, RunResult, SavedConfig};
use crate::train::{train_group, Control, RunConfig, Status};
use crate::util::{create_dir, write_atomic, write_json};

/// How a plan runs.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Parallel workers (rayon threads).
    pub jobs: usize,
    /// Cores available to BLAS in total.
    pub threads: usize,
    /// Most configurations per lockstep group.
    pub max_group: usize,
    /// Folder that receives one sub-folder per configuration.
    pub out: PathBuf,
    /// Data folder, recorded in config.json.
    pub data_dir: String,
    /// Skip finished configurations and continue checkpointed ones.
    pub resume: bool,
}

/// What a resume finds in a run folder.
enum Found {
    Finished(RunResult),
    Checkpoint(Box<Checkpoint>),
    Nothing,
}

fn look(dir: &Path, config: &RunConfig) -> Result<Found> {
    let result = dir.join("result.json");
    if result.exists() {
        let r: RunResult = serde_json::from_slice(&std::fs::read(&result)?).with_context(|| {
            format!(
                "{} is not a shallow result: delete it to run again",
                result.display()
            )
        })?;
        if r.status != Status::Interrupted {
            return Ok(Found::Finished(r));
        }
    }
    let ck = dir.join(checkpoint::FILE);
    if ck.exists() {
        let c = Checkpoint::load(&ck)?;
        if c.config != *config {
            anyhow::bail!(
                "{} was made with other settings than this sweep's: use another --out, or delete it",
                ck.display()
            );
        }
        return Ok(Found::Checkpoint(Box::new(c)));
    }
    Ok(Found::Nothing)
}

/// Trains every configuration of `configs` on `split`, in lockstep groups on a
/// pool of `jobs` workers, writing each run's folder as soon as it finishes.
/// `ids[i]` is configuration i's id for the dashboard. Returns the results in
/// the order of `configs` (interrupted ones with status `interrupted`).
pub fn run_plan<T: Real>(
    configs: &[RunConfig],
    ids: &[usize],
    split: &Split<T>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &Dashboard,
) -> Result<Vec<RunResult>> {
    let mut results: Vec<Option<RunResult>> = vec![None; configs.len()];
    let mut checkpoints: Vec<Option<Checkpoint>> = vec![None; configs.len()];
    if opts.resume {
        for (i, c) in configs.iter().enumerate() {
            match look(&opts.out.join(&c.name), c)? {
                Found::Finished(r) => {
                    dashboard.mark_done(ids[i], c.steps, "already done (resume)");
                    results[i] = Some(r);
                }
                Found::Checkpoint(ck) => checkpoints[i] = Some(*ck),
                Found::Nothing => {}
            }
        }
    }
    let todo: Vec<usize> = (0..configs.len())
        .filter(|&i| results[i].is_none())
        .collect();
    let keys: Vec<String> = todo
        .iter()
        .map(|&i| {
            format!(
                "{}@{}",
                configs[i].lockstep_key(),
                checkpoints[i].as_ref().map_or(0, |c| c.step)
            )
        })
        .collect();
    let groups: Vec<Vec<usize>> = group_by_key(&keys, opts.jobs, opts.max_group)
        .into_iter()
        .map(|g| g.into_iter().map(|k| todo[k]).collect())
        .collect();
    let workers = opts.jobs.max(1).min(groups.len().max(1));
    // Several workers share the cores out as BLAS threads. One worker (groups
    // train one after another) sets BLAS up per group: a thin layer 0 splits its
    // big GEMMs into single-threaded calls on rayon tasks.
    let stacked_rows = |members: &[usize]| members.len() * configs[members[0]].arch().widths()[1];
    let parallelism =
        |members: &[usize]| blas::parallelism(opts.threads, workers, stacked_rows(members));
    if workers > 1 {
        blas::configure(opts.threads, workers, 0);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(if workers == 1 { opts.threads } else { workers })
        .build()?;
    let sizes = [split.train.len(), split.val.len(), split.test.len()];
    let saved = |c: &RunConfig, (blas_threads, gemm_split): (usize, usize)| SavedConfig {
        config: c.clone(),
        init_seed: c.init_seed(),
        data_dir: opts.data_dir.clone(),
        sizes,
        version: env!("CARGO_PKG_VERSION").to_string(),
        blas_threads,
        gemm_split,
        blas: blas::describe(),
    };
    let done: Vec<Result<Vec<(usize, RunResult)>>> = pool.install(|| {
        groups
            .par_iter()
            .map(|members| {
                let group: Vec<RunConfig> = members.iter().map(|&i| configs[i].clone()).collect();
                let group_ids: Vec<usize> = members.iter().map(|&i| ids[i]).collect();
                let resume = if checkpoints[members[0]].is_some() {
                    let cks: Vec<Checkpoint> = members
                        .iter()
                        .map(|&i| checkpoints[i].clone().expect("same step"))
                        .collect();
                    Some(Checkpoint::stack::<T>(&cks)?)
                } else {
                    None
                };
                let threads = parallelism(members);
                if workers == 1 {
                    blas::configure(opts.threads, 1, stacked_rows(members));
                }
                let outcome = train_group(&group, &group_ids, split, control, dashboard, resume)?;
                let mut out = Vec::new();
                for (c, run) in outcome.runs.iter().enumerate() {
                    let dir = opts.out.join(&run.config.name);
                    if let Some(state) = &outcome.state {
                        // Interrupted: keep the state and what was logged, no result yet.
                        create_dir(&dir)?;
                        write_json(&dir.join("config.json"), &saved(&run.config, threads))?;
                        write_atomic(&dir.join("metrics.csv"), &metrics_csv(run)?)?;
                        Checkpoint::from_state(state, c, &run.config)
                            .save(&dir.join(checkpoint::FILE))?;
                        out.push((members[c], RunResult::from_outcome(run)));
                    } else {
                        let saved = saved(&run.config, threads);
                        let r = write_run(&dir, run, &saved, &split.class_names)?;
                        let _ = std::fs::remove_file(dir.join(checkpoint::FILE));
                        out.push((members[c], r));
                    }
                }
                Ok(out)
            })
            .collect()
    });
    for r in done {
        for (i, res) in r? {
            results[i] = Some(res);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every configuration has a result"))
        .collect())
}

/// Trains configurations that may use different splits or precisions: builds each
/// (split, precision) pair's data once from `data` and runs its configurations
/// with [`run_plan`], with the dashboard drawing meanwhile. Results come back in
/// the order of `configs`.
pub fn run_configs(
    configs: &[RunConfig],
    data: &crate::data::Cifar10,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &Dashboard,
) -> Result<Vec<RunResult>> {
    use crate::nn::Precision;
    let mut keys: Vec<(crate::data::SplitSpec, Precision)> = Vec::new();
    for c in configs {
        if !keys.contains(&(c.split, c.precision)) {
            keys.push((c.split, c.precision));
        }
    }
    create_dir(&opts.out)?;
    let mut out: Vec<Option<RunResult>> = vec![None; configs.len()];
    dashboard.run_while(|| -> Result<()> {
        for (spec, precision) in keys {
            let idx: Vec<usize> = (0..configs.len())
                .filter(|&i| configs[i].split == spec && configs[i].precision == precision)
                .collect();
            let part: Vec<RunConfig> = idx.iter().map(|&i| configs[i].clone()).collect();
            let runs = match precision {
                Precision::F32 => run_plan(
                    &part,
                    &idx,
                    &Split::<f32>::new(data, spec)?,
                    opts,
                    control,
                    dashboard,
                )?,
                Precision::F64 => run_plan(
                    &part,
                    &idx,
                    &Split::<f64>::new(data, spec)?,
                    opts,
                    control,
                    dashboard,
                )?,
            };
            for (i, r) in idx.into_iter().zip(runs) {
                out[i] = Some(r);
            }
        }
        Ok(())
    })?;
    Ok(out
        .into_iter()
        .map(|o| o.expect("every configuration ran"))
        .collect())
}
