//! Runs a plan: lockstep groups spread over a rayon pool, one BLAS thread per
//! worker (or every core for BLAS when a single group runs), the data shared.

use std::path::PathBuf;

use anyhow::Result;
use rayon::prelude::*;

use super::plan::group_configs;
use super::Dashboard;
use crate::data::Split;
use crate::nn::{blas, Real};
use crate::train::output::{write_run, SavedConfig};
use crate::train::{train_group, Control, RunConfig, RunOutcome};

/// How a plan runs.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Parallel workers (rayon threads).
    pub jobs: usize,
    /// Cores available to BLAS in total.
    pub threads: usize,
    /// Most configurations per lockstep group.
    pub max_group: usize,
    /// Folder that receives one sub-folder per configuration (`None`: write nothing).
    pub out: Option<PathBuf>,
    /// Data folder, recorded in config.json.
    pub data_dir: String,
}

/// Trains every configuration of `configs` on `split`, in lockstep groups on a
/// pool of `jobs` workers, writing each run's folder as soon as it finishes.
/// `ids[i]` is configuration i's id for the dashboard. Returns the outcomes in
/// the order of `configs`.
pub fn run_plan<T: Real>(
    configs: &[RunConfig],
    ids: &[usize],
    split: &Split<T>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &Dashboard,
) -> Result<Vec<RunOutcome>> {
    let groups = group_configs(configs, opts.jobs, opts.max_group);
    let workers = opts.jobs.max(1).min(groups.len().max(1));
    let blas_threads = (opts.threads / workers).max(1);
    blas::set_threads(blas_threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()?;
    let sizes = [split.train.len(), split.val.len(), split.test.len()];
    let results: Vec<Result<Vec<(usize, RunOutcome)>>> = pool.install(|| {
        groups
            .par_iter()
            .map(|members| {
                let group: Vec<RunConfig> = members.iter().map(|&i| configs[i].clone()).collect();
                let group_ids: Vec<usize> = members.iter().map(|&i| ids[i]).collect();
                let outcome = train_group(&group, &group_ids, split, control, dashboard, None)?;
                if let Some(out) = &opts.out {
                    for run in &outcome.runs {
                        let saved = SavedConfig {
                            config: run.config.clone(),
                            init_seed: run.config.init_seed(),
                            data_dir: opts.data_dir.clone(),
                            sizes,
                            version: env!("CARGO_PKG_VERSION").to_string(),
                            blas_threads,
                            blas: blas::describe(),
                        };
                        write_run(&out.join(&run.config.name), run, &saved, &split.class_names)?;
                    }
                }
                Ok(members.iter().copied().zip(outcome.runs).collect())
            })
            .collect()
    });
    let mut all: Vec<(usize, RunOutcome)> = Vec::with_capacity(configs.len());
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, o)| o).collect())
}

/// Trains configurations that may use different splits or precisions: builds each
/// (split, precision) pair's data once from `data` and runs its configurations
/// with [`run_plan`]. Outcomes come back in the order of `configs`.
pub fn run_configs(
    configs: &[RunConfig],
    data: &crate::data::Cifar10,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &Dashboard,
) -> Result<Vec<RunOutcome>> {
    use crate::nn::Precision;
    let mut keys: Vec<(crate::data::SplitSpec, Precision)> = Vec::new();
    for c in configs {
        if !keys.contains(&(c.split, c.precision)) {
            keys.push((c.split, c.precision));
        }
    }
    let mut out: Vec<Option<RunOutcome>> = vec![None; configs.len()];
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
