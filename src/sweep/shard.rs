//! Sharding a plan over several processes or machines (`--shard K/N`, Slurm
//! job arrays): the plan's lockstep groups, each given whole to one shard,
//! decided from the plan alone so that every shard of every machine agrees.
//!
//! A group's numbers depend only on its members, so a shard trains exactly
//! what a single process would have trained for those configurations, bit for
//! bit, and `shallow sweep merge` gathers the run folders into the sweep a
//! single machine would have written.

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::plan::group_configs;
use crate::train::RunConfig;

/// Shard `index` of `count` (counting from 0, as `SLURM_ARRAY_TASK_ID` does
/// with `--array=0-(count-1)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0..count.
    pub index: usize,
    /// How many shards the plan is cut into.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N` (`--shard 0/4`), refusing anything else with a message that
    /// names the flag and the form.
    pub fn parse(s: &str) -> Result<Self> {
        let parsed = s.split_once('/').and_then(|(k, n)| {
            Some((
                k.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        let Some((index, count)) = parsed else {
            bail!("--shard {s:?}: give K/N, shard K of N counting from 0, e.g. --shard 0/4 (Slurm: --shard $SLURM_ARRAY_TASK_ID/4)");
        };
        if count == 0 || index >= count {
            bail!(
                "--shard {s}: K counts from 0 to N-1 (as SLURM_ARRAY_TASK_ID does with --array=0-{}), so {index}/{count} does not exist",
                count.max(1) - 1
            );
        }
        Ok(Shard { index, count })
    }

    /// `K/N`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// The file name of this shard's record: `shard-K-of-N.json`.
    pub fn record_name(&self) -> String {
        format!("shard-{}-of-{}.json", self.index, self.count)
    }
}

/// The parts of a plan that share their data: indices into `configs` of each
/// (split, precision), in order of first appearance. The runner builds each
/// part's data once and trains its groups; [`plan_groups`] numbers the groups
/// the same way.
pub fn plan_parts(configs: &[RunConfig]) -> Vec<Vec<usize>> {
    let mut keys: Vec<(crate::data::SplitSpec, crate::nn::Precision)> = Vec::new();
    for c in configs {
        if !keys.contains(&(c.split, c.precision)) {
            keys.push((c.split, c.precision));
        }
    }
    keys.into_iter()
        .map(|key| {
            (0..configs.len())
                .filter(|&i| (configs[i].split, configs[i].precision) == key)
                .collect()
        })
        .collect()
}

/// The lockstep groups of a whole plan, as indices into `configs`, in the
/// order the runner trains them: configurations are split by (split,
/// precision) in order of first appearance, then grouped with
/// [`group_configs`] within each part.
pub fn plan_groups(configs: &[RunConfig], max_group: usize) -> Vec<Vec<usize>> {
    plan_groups_by(configs, |part| group_configs(part, max_group))
}

/// [`plan_groups`] with the groups of each part made by `group` (a pruned
/// search's rung also splits them by the step they pause at).
pub fn plan_groups_by(
    configs: &[RunConfig],
    group: impl Fn(&[RunConfig]) -> Vec<Vec<usize>>,
) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    for idx in plan_parts(configs) {
        let part: Vec<RunConfig> = idx.iter().map(|&i| configs[i].clone()).collect();
        for g in group(&part) {
            groups.push(g.into_iter().map(|j| idx[j]).collect());
        }
    }
    groups
}

/// Estimated work of one configuration: floating-point operations of its
/// training steps and of its logged evaluations.
fn work(c: &RunConfig) -> f64 {
    let arch = c.arch();
    let logs = c.steps / c.log_every.max(1) + 2;
    c.steps as f64 * arch.step_flops(c.batch)
        + logs as f64 * arch.forward_flops(c.split.train_len().min(10_000) + c.split.val_len())
}

/// The shard of each group of `groups` (see [`plan_groups`]) when cut into
/// `count` shards: longest work first, each to the least loaded shard (the
/// lowest index on ties), so shards finish at about the same time. Depends on
/// the plan alone.
pub fn assign(configs: &[RunConfig], groups: &[Vec<usize>], count: usize) -> Vec<usize> {
    let cost: Vec<f64> = groups
        .iter()
        .map(|g| g.iter().map(|&i| work(&configs[i])).sum())
        .collect();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    // Stable: equal costs keep plan order.
    order.sort_by(|&a, &b| cost[b].total_cmp(&cost[a]));
    let mut load = vec![0.0f64; count.max(1)];
    let mut shard = vec![0; groups.len()];
    for g in order {
        let (k, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("at least one shard");
        shard[g] = k;
        load[k] += cost[g];
    }
    shard
}

/// Which configurations of `configs` shard `shard` trains (true per configuration).
pub fn members(configs: &[RunConfig], max_group: usize, shard: Shard) -> Vec<bool> {
    members_of(configs, &plan_groups(configs, max_group), shard)
}

/// Which configurations of `configs` shard `shard` trains when `groups` (of
/// [`plan_groups_by`]) are dealt by [`assign`] (true per configuration).
pub fn members_of(configs: &[RunConfig], groups: &[Vec<usize>], shard: Shard) -> Vec<bool> {
    let of = assign(configs, groups, shard.count);
    let mut mine = vec![false; configs.len()];
    for (g, members) in groups.iter().enumerate() {
        if of[g] == shard.index {
            for &i in members {
                mine[i] = true;
            }
        }
    }
    mine
}

/// Folder of a sweep that holds its shards' records.
pub const SHARDS_DIR: &str = "shards";

/// What a shard writes beside its run folders (`shards/shard-K-of-N.json`):
/// which configurations it trained, where and how long.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Which shard.
    pub shard: Shard,
    /// Names of its configurations, in plan order.
    pub runs: Vec<String>,
    /// Whether all of them finished (false when interrupted).
    pub finished: bool,
    /// Host name of the machine.
    pub host: String,
    /// Cores it used.
    pub cores: usize,
    /// Wall seconds of this process.
    pub wall_s: f64,
    /// UTC date and time it ended.
    pub date: String,
    /// Slurm job and array task, when run by Slurm (`SLURM_ARRAY_JOB_ID_TASK`).
    pub slurm_job: Option<String>,
    /// The shard's command line, as typed (or as its job script ran it).
    #[serde(default)]
    pub command: String,
}

impl ShardRecord {
    /// The record of the shard that ran now in this process.
    pub fn now(shard: Shard, runs: Vec<String>, finished: bool, cores: usize, wall_s: f64) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let slurm_job = match (env("SLURM_ARRAY_JOB_ID"), env("SLURM_ARRAY_TASK_ID")) {
            (Some(j), Some(t)) => Some(format!("{j}_{t}")),
            _ => env("SLURM_JOB_ID"),
        };
        ShardRecord {
            shard,
            runs,
            finished,
            host: host_name(),
            cores,
            wall_s,
            date: crate::util::utc_now(),
            slurm_job,
            command: crate::util::command_line(),
        }
    }

    /// Writes it to `dir`/shards/shard-K-of-N.json (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let shards = dir.join(SHARDS_DIR);
        crate::util::create_dir(&shards)?;
        crate::util::write_json(&shards.join(self.shard.record_name()), self)
    }

    /// Every shard record in `dir`/shards, sorted by (count, index); unreadable
    /// files are skipped.
    pub fn read_all(dir: &Path) -> Vec<ShardRecord> {
        let mut out: Vec<ShardRecord> = std::fs::read_dir(dir.join(SHARDS_DIR))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by_key(|r: &ShardRecord| (r.shard.count, r.shard.index));
        out
    }
}

/// This machine's host name (the kernel's), or "unknown".
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Precision;
    use crate::sweep::SweepSpec;
    use crate::train::TrainSettings;

    /// `n` configurations of the sweep defaults with `hidden` units, in `precision`.
    fn configs(prefix: &str, n: usize, hidden: usize, precision: Precision) -> Vec<RunConfig> {
        let base = TrainSettings {
            hidden: vec![hidden],
            precision,
            ns: 500,
            ..TrainSettings::sweep_default()
        };
        let lambdas: Vec<f64> = (0..n).map(|i| 1e-4 * (i + 1) as f64).collect();
        let mut spec = SweepSpec::lambdas(base, &lambdas);
        spec.prefix = prefix.into();
        spec.configs().unwrap()
    }

    #[test]
    fn shards_parse_from_k_of_n_counting_from_zero_and_refuse_the_rest() {
        assert_eq!(Shard::parse("0/4").unwrap(), Shard { index: 0, count: 4 });
        assert_eq!(Shard::parse("3/4").unwrap().label(), "3/4");
        let e = Shard::parse("4/4").unwrap_err().to_string();
        assert!(
            e.contains("K counts from 0 to N-1") && e.contains("--array=0-3"),
            "{e}"
        );
        for bad in ["", "1", "a/b", "1/0", "-1/4", "1/4/2"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--shard {bad}")) || e.contains("--shard"),
                "{e}"
            );
        }
    }

    #[test]
    fn every_group_goes_whole_to_exactly_one_shard_and_the_work_is_balanced() {
        // 10 small runs (two groups of 4 and one of 2 at --max-group 4), 3 wide
        // ones and one in f64: five groups.
        let mut all = configs("s", 10, 50, Precision::F32);
        all.extend(configs("w", 3, 400, Precision::F32));
        all.extend(configs("d", 1, 50, Precision::F64));
        let configs = all;
        let groups = plan_groups(&configs, 4);
        assert_eq!(groups.len(), 5, "{groups:?}");
        let mut seen = vec![0; configs.len()];
        for g in &groups {
            for &i in g {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        for count in 1..=6 {
            let shards: Vec<Vec<bool>> = (0..count)
                .map(|index| members(&configs, 4, Shard { index, count }))
                .collect();
            for i in 0..configs.len() {
                let owners = shards.iter().filter(|m| m[i]).count();
                assert_eq!(owners, 1, "config {i} with {count} shards");
            }
            // A group's members share a shard.
            for g in &groups {
                for m in &shards {
                    assert!(g.iter().all(|&i| m[i] == m[g[0]]), "{g:?} split");
                }
            }
        }
        // Two shards: the wide group (3 x 400 units, about 4x the rest) alone
        // on one, the four small groups on the other.
        let two = members(&configs, 4, Shard { index: 0, count: 2 });
        assert!(two[10] && two[11] && two[12], "{two:?}");
        assert!(!two[0] && !two[13], "{two:?}");
        // The same plan gives the same assignment, whatever else is going on.
        assert_eq!(two, members(&configs, 4, Shard { index: 0, count: 2 }));
    }
}
