//! Sweeps: the plan (configurations and their lockstep groups), the parallel
//! runner (which shows its progress through [`Progress`]) and the results tables.

pub mod halving;
pub mod ladder;
pub mod merge;
pub mod plan;
pub mod results;
pub mod runner;
pub mod shard;
pub mod slurm;

pub use plan::{
    group_by_key, group_configs, log_range, AxisValues, SweepSettings, SweepSpec, DEFAULT_MAX_GROUP,
};
pub use runner::{
    configs_here, run_configs, run_configs_shard, run_plan, trained_here, Progress, RunnerOptions,
};
pub use shard::Shard;
