//! Runs a plan: lockstep groups decided from the plan, `jobs` of them at a time
//! on a rayon pool, BLAS single-threaded with the big products cut into fixed
//! blocks that idle cores pick up, the data shared.
//! Interrupted groups leave a checkpoint per configuration; `resume` skips
//! finished configurations and continues checkpointed ones.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::plan::group_configs;
use crate::data::Split;
use crate::nn::{blas, Real};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::output::{metrics_csv, write_run, RunResult, SavedConfig};
use crate::train::{train_group, Control, Group, Observer, RunConfig, Status};
use crate::util::{create_dir, write_atomic, write_json};

/// Whoever shows a plan's progress (the terminal dashboard, `ui::Dashboard`):
/// the training loop's [`Observer`] calls, and what the runner itself says.
pub trait Progress: Observer {
    /// Prints a line above the progress display.
    fn println(&self, line: &str);
    /// Configuration `id` continues from `step` (a checkpoint, on resume).
    fn resume_at(&self, id: usize, step: usize);
    /// Configuration `id` is finished without training (found done on resume).
    fn mark_done(&self, id: usize, steps: usize, line: &str);
    /// Runs `work` while the display redraws itself, then leaves its final state.
    fn show_while(&self, work: &mut dyn FnMut());
    /// Configuration `id` stopped at a rung of a pruned search after `steps`.
    fn pruned(&self, id: usize, steps: usize, line: &str) {
        self.mark_done(id, steps, line);
    }
    /// Stage `stage` (from 0) of a pruned search's `stages` begins, as `line` says.
    fn stage(&self, stage: usize, stages: usize, line: &str) {
        let _ = (stage, stages);
        self.println(line);
    }
    /// A rung is decided, its best validation accuracy `best`, as `line` says.
    fn decided(&self, best: f64, line: &str) {
        let _ = best;
        self.println(line);
    }
}

/// How a plan runs.
#[derive(Clone, Debug, Default)]
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
    /// Record the plan in `out/plan.json` and check it: a resume must have the
    /// same plan, and a new plan refuses a folder that holds another (sweeps,
    /// searches, experiments; not `shallow train`, whose runs share a parent).
    pub guard: bool,
    /// With `guard`: start over in a folder that holds another plan, removing
    /// the run folders and tables it left.
    pub force: bool,
    /// Draws each finished run's pictures (curves.png, weights.png), usually
    /// `report::run_pictures`; none without it.
    pub draw: Option<crate::train::output::DrawRun>,
    /// Train only this shard's lockstep groups ([`super::shard`]). A shard
    /// joins the folder's plan as a resume does: it accepts the same plan,
    /// refuses another, skips its finished configurations and continues its
    /// checkpointed ones (so a requeued Slurm task picks up where it stopped).
    pub shard: Option<super::shard::Shard>,
    /// A pruned search's plan (`--halving`, `--hyperband`), recorded with the
    /// plan so that a resume with other rungs is refused.
    pub ladder: Option<super::ladder::Ladder>,
    /// A rung of a pruned search: the configurations named here train only
    /// to their step and stay checkpointed there (paused), and a checkpoint
    /// at that step counts as that rung done. Finished runs are kept and
    /// checkpoints continued, as on resume, without saying so.
    pub pause_at: Option<std::collections::BTreeMap<String, usize>>,
}

impl RunnerOptions {
    /// Whether finished runs are kept and checkpoints continued: `--resume`,
    /// any shard, or a pruned search's rung.
    pub fn resuming(&self) -> bool {
        self.resume || self.shard.is_some() || self.pause_at.is_some()
    }

    /// The step at which `config` pauses (its own steps without a rung).
    pub fn end_step(&self, config: &RunConfig) -> usize {
        self.pause_at
            .as_ref()
            .and_then(|p| p.get(&config.name).copied())
            .unwrap_or(config.steps)
    }
}

/// File name of the plan record in a sweep folder.
pub const PLAN_FILE: &str = "plan.json";

/// What `plan.json` holds: every configuration of the plan and the grouping
/// setting, the two things a run's numbers depend on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanRecord {
    /// Most configurations per lockstep group.
    pub max_group: usize,
    /// Every configuration, in plan order.
    pub runs: Vec<RunConfig>,
    /// A pruned search's brackets and rungs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving: Option<super::ladder::Ladder>,
}

/// The settings in which two plans differ, as readable lines (empty when equal).
pub fn plan_differences(old: &PlanRecord, new: &PlanRecord) -> Vec<String> {
    let mut out = Vec::new();
    if old.max_group != new.max_group {
        out.push(format!(
            "max_group: {} in the folder, {} now",
            old.max_group, new.max_group
        ));
    }
    if old.halving != new.halving {
        let value = |l: &Option<super::ladder::Ladder>| {
            l.as_ref()
                .map_or_else(|| "no pruning".to_string(), |l| l.describe())
        };
        out.push(format!(
            "pruning: {} in the folder, {} now",
            value(&old.halving),
            value(&new.halving)
        ));
    }
    if old.runs.len() != new.runs.len() {
        out.push(format!(
            "runs: {} in the folder, {} now",
            old.runs.len(),
            new.runs.len()
        ));
    }
    // Field by field over the runs, each difference named once.
    let mut seen = std::collections::BTreeSet::new();
    for (a, b) in old.runs.iter().zip(&new.runs) {
        let (a, b) = (
            serde_json::to_value(a).unwrap_or_default(),
            serde_json::to_value(b).unwrap_or_default(),
        );
        let mut diffs = Vec::new();
        json_diff("", &a, &b, &mut diffs);
        for (key, va, vb) in diffs {
            if seen.insert(key.clone()) {
                out.push(format!("{key}: {va} in the folder, {vb} now"));
            }
        }
    }
    out
}

fn json_diff(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_diff(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

/// Records or checks the plan of `configs` in `opts.out` (see
/// [`RunnerOptions::guard`]).
pub fn guard_plan(configs: &[RunConfig], opts: &RunnerOptions) -> Result<()> {
    let path = opts.out.join(PLAN_FILE);
    let new = PlanRecord {
        max_group: opts.max_group,
        runs: configs.to_vec(),
        halving: opts.ladder.clone(),
    };
    if path.exists() {
        let old: PlanRecord =
            serde_json::from_slice(&std::fs::read(&path)?).with_context(|| {
                format!(
                    "{} is not a shallow plan: use another --out, or delete the folder",
                    path.display()
                )
            })?;
        if opts.resuming() {
            let diffs = plan_differences(&old, &new);
            if !diffs.is_empty() {
                anyhow::bail!(
                    "{}: {} holds another plan than this command's, so {} would mix two experiments. \
                     It differs in:\n  {}\n{}",
                    match opts.shard {
                        Some(s) => format!("--shard {}", s.label()),
                        None => "--resume".into(),
                    },
                    opts.out.display(),
                    if opts.shard.is_some() { "this shard" } else { "resuming" },
                    diffs.join("\n  "),
                    if opts.shard.is_some() {
                        "Give every shard the same command, or use another --out"
                    } else {
                        "Run the folder's own command to resume it, or start over there with --force \
                         (removes its runs), or use another --out"
                    }
                );
            }
        } else if opts.force {
            remove_runs(&opts.out, &old)?;
        } else {
            anyhow::bail!(
                "{} holds an earlier run of {} configuration{} ({PLAN_FILE}): continue it with --resume, \
                 start over with --force (removes its runs), or use another --out",
                opts.out.display(),
                old.runs.len(),
                if old.runs.len() == 1 { "" } else { "s" }
            );
        }
    }
    crate::folder::record(&opts.out, crate::folder::FolderKind::Sweep)?;
    write_json(&path, &new)
}

/// Removes the run folders of `plan` from `dir`, its tables, shard records
/// and plan record (`--force`); other files stay.
fn remove_runs(dir: &Path, plan: &PlanRecord) -> Result<()> {
    for c in &plan.runs {
        let run = dir.join(&c.name);
        if run.is_dir() {
            std::fs::remove_dir_all(&run)
                .with_context(|| format!("--force: cannot remove {}", run.display()))?;
        }
    }
    let _ = std::fs::remove_dir_all(dir.join(super::shard::SHARDS_DIR));
    for f in [
        "results.csv",
        "results.jsonl",
        "results.md",
        super::ladder::RUNGS_FILE,
        PLAN_FILE,
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(())
}

/// `--force` for a folder whose plan is not known yet (a search's later
/// stages): removes the runs of the plan recorded in `dir`, if any.
pub fn clear_plan(dir: &Path) -> Result<()> {
    let path = dir.join(PLAN_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let old: PlanRecord = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a shallow plan: use another --out, or delete the folder",
            path.display()
        )
    })?;
    remove_runs(dir, &old)
}

/// Bytes this process may still allocate: the smaller of the machine's
/// available memory and what is left under its cgroup's limit (a Slurm job's
/// `--mem`), or `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Refuses a plan whose lockstep groups, `jobs` of them at once, and its data
/// need more memory than this process may allocate, before anything is
/// allocated or written (the allocator would abort the process midway).
pub fn check_memory(configs: &[RunConfig], max_group: usize, jobs: usize) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let mut groups: Vec<u64> = group_configs(configs, max_group.max(1))
        .iter()
        .map(|g| {
            g.iter()
                .map(|&i| configs[i].memory_bytes())
                .fold(0, u64::saturating_add)
        })
        .collect();
    groups.sort_unstable_by(|a, b| b.cmp(a));
    let at_once = groups
        .iter()
        .take(jobs.max(1))
        .fold(0u64, |a, &b| a.saturating_add(b));
    // The images, standardised once: every split of the plan's largest precision.
    let data = configs
        .iter()
        .map(|c| {
            let elem = if c.precision == crate::nn::Precision::F64 {
                8
            } else {
                4
            };
            60_000u64 * c.arch().input as u64 * elem
        })
        .max()
        .unwrap_or(0);
    let need = at_once.saturating_add(data);
    if need > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        anyhow::bail!(
            "the runs need at least {:.1} GiB of memory ({:.1} GiB for the networks of {} lockstep group{} training \
             at once, {:.1} GiB for the data), and {:.1} GiB is available: use narrower --hidden layers, fewer \
             configurations per group (--max-group) or fewer at once (--jobs), or a machine with more memory",
            gib(need),
            gib(at_once),
            groups.len().min(jobs.max(1)),
            if groups.len().min(jobs.max(1)) == 1 { "" } else { "s" },
            gib(data),
            gib(available)
        );
    }
    Ok(())
}

/// What a resume finds in a run folder.
enum Found {
    Finished(Box<RunResult>),
    Checkpoint(Box<Checkpoint>),
    Nothing,
}

/// What a resume finds in the run folder `dir` of `config`. A finished run
/// whose pictures are missing (a full disk stopped their drawing) counts as
/// not finished when `pictures` are drawn: its group trains again, to the
/// same numbers, and the folder is written whole.
fn look(dir: &Path, config: &RunConfig, pictures: bool) -> Result<Found> {
    let result = dir.join("result.json");
    if result.exists() {
        let r: RunResult = serde_json::from_slice(&std::fs::read(&result)?).with_context(|| {
            format!(
                "{} is not a shallow result: delete it to run again",
                result.display()
            )
        })?;
        let drawn = |f: &str| dir.join(f).exists();
        let missing = pictures
            && r.status == Status::Done
            && (!drawn("curves.png") || (config.hidden.is_empty() && !drawn("weights.png")));
        if r.status != Status::Interrupted && !missing {
            return Ok(Found::Finished(Box::new(r)));
        }
    }
    let ck = dir.join(checkpoint::FILE);
    if ck.exists() {
        let c = Checkpoint::load(&ck)?;
        if c.config != *config {
            anyhow::bail!(
                "{} was made with other settings than this command's: run the command that made it with --resume, \
                 or start over with --force, or use another --out",
                ck.display()
            );
        }
        return Ok(Found::Checkpoint(Box::new(c)));
    }
    Ok(Found::Nothing)
}

/// A group's results: (index in the plan, result) per newly trained member.
type GroupResults = Vec<(usize, RunResult)>;

/// The lockstep groups of [`group_configs`], split further by the step at
/// which [`RunnerOptions::pause_at`] stops them (a pruned search's brackets).
pub fn stage_groups(configs: &[RunConfig], opts: &RunnerOptions) -> Vec<Vec<usize>> {
    if opts.pause_at.is_none() {
        return group_configs(configs, opts.max_group);
    }
    let keys: Vec<_> = configs
        .iter()
        .map(|c| (c.lockstep_key(), opts.end_step(c)))
        .collect();
    super::plan::group_by_key(&keys, opts.max_group)
}

/// The result of a configuration checkpointed at its rung: its figures at
/// the last logged point (the rung's), status paused, or diverged.
pub fn paused_result(ck: &Checkpoint) -> RunResult {
    let mut r = RunResult::not_started(&ck.config);
    r.status = if ck.diverged.is_some() {
        Status::Diverged
    } else {
        Status::Paused
    };
    r.steps = ck.diverged.map_or(ck.step, |d| d.step);
    r.diverged = ck.diverged;
    r.wall_s = ck.wall_s;
    r.ms_per_step = ck.train_s * 1000.0 / ck.step.max(1) as f64;
    if let Some(p) = ck.history.last() {
        (r.train_acc, r.train_cost) = (p.train.acc, p.train.cost);
        (r.val_acc, r.val_cost) = (p.val.acc, p.val.cost);
    }
    r
}

/// What the lockstep groups of a plan find on disk when resuming.
enum GroupStart {
    /// Every member has a result: nothing to train.
    Finished,
    /// Every member has a checkpoint at the same step: continue from it.
    Resume(Vec<Checkpoint>),
    /// Anything else: train from the start.
    Fresh,
    /// Another shard's group: not trained here.
    Elsewhere,
    /// Every member has a checkpoint at its rung's step: that rung is done.
    Paused(Vec<Checkpoint>),
}

/// Trains every configuration of `configs` on `split` in the lockstep groups of
/// [`group_configs`] (decided from the configurations alone), `jobs` groups at a
/// time on a pool of `threads` cores, writing each run's folder as soon as it
/// finishes. `ids[i]` is configuration i's id for the dashboard. Returns the
/// results in the order of `configs` (interrupted ones with status `interrupted`).
///
/// BLAS runs single-threaded; a group's layer-0 products are cut into the fixed
/// blocks of [`blas::gemm_blocks`], which idle cores pick up. So a run's numbers
/// depend on its configuration, its group (`max_group`) and its seed, never on
/// `jobs`, `threads`, or where it was interrupted.
pub fn run_plan<T: Real>(
    configs: &[RunConfig],
    ids: &[usize],
    split: &Split<T>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
) -> Result<Vec<RunResult>> {
    Ok(
        run_plan_part(configs, ids, split, opts, control, dashboard, None)?
            .into_iter()
            .map(|r| r.expect("every configuration has a result"))
            .collect(),
    )
}

/// [`run_plan`] for the groups whose members `wanted` marks (all without it;
/// a group is wanted or not as a whole): results of the others are `None`.
fn run_plan_part<T: Real>(
    configs: &[RunConfig],
    ids: &[usize],
    split: &Split<T>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
    wanted: Option<&[bool]>,
) -> Result<Vec<Option<RunResult>>> {
    let mut results: Vec<Option<RunResult>> = vec![None; configs.len()];
    let groups = stage_groups(configs, opts);
    let starts = group_starts(configs, ids, &groups, opts, dashboard, wanted, &mut results)?;
    if opts.resuming() && opts.pause_at.is_none() {
        say_resumed(ids, &groups, &starts, opts, dashboard);
    }
    // Groups found at their rung: their results are their checkpoints'.
    for (members, start) in groups.iter().zip(&starts) {
        if let GroupStart::Paused(cks) = start {
            for (&i, ck) in members.iter().zip(cks) {
                dashboard.resume_at(ids[i], ck.step);
                results[i] = Some(paused_result(ck));
            }
        }
    }
    let todo: Vec<usize> = (0..groups.len())
        .filter(|&g| {
            !matches!(
                starts[g],
                GroupStart::Finished | GroupStart::Elsewhere | GroupStart::Paused(_)
            )
        })
        .collect();
    let lanes = opts.jobs.max(1).min(todo.len().max(1));
    blas::set_threads(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()?;
    // bf16 and int16 groups on consecutive batches share the training images
    // converted once: convert them here, on the whole pool, before any group
    // waits for them (a refusal is the group's, when it starts).
    for &g in &todo {
        let first = &configs[groups[g][0]];
        if !first.reads_packed() {
            continue;
        }
        match first.precision {
            crate::nn::Precision::Bf16 if crate::linalg::bf16::available() => {
                pool.install(|| split.train.packed_bf16());
            }
            crate::nn::Precision::Int16 => {
                if let Ok(pixels) = split.preprocess.int16_pixels() {
                    let _ = pool.install(|| split.train.packed_int16(&pixels));
                }
            }
            _ => {}
        }
    }
    let train_one = |g: usize| -> Result<GroupResults> {
        let members = &groups[g];
        let group = Group::new(members.iter().map(|&i| configs[i].clone()).collect())?
            .paused_at(opts.end_step(&configs[members[0]]));
        let group_ids: Vec<usize> = members.iter().map(|&i| ids[i]).collect();
        let resume = match &starts[g] {
            GroupStart::Resume(cks) => Some(Checkpoint::stack::<T>(cks)?),
            _ => None,
        };
        let outcome = train_group(&group, &group_ids, split, control, dashboard, resume)?;
        write_group(&outcome, members, &results, split, opts)
    };
    // `lanes` groups train at once; each lane takes the next group in plan order.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Result<GroupResults>>> = Mutex::new(Vec::new());
    pool.scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|_| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&g) = todo.get(k) else { break };
                // After Ctrl-C or SIGTERM, groups not started are not started:
                // nothing is set up, evaluated or written for them.
                if control.stopped() {
                    break;
                }
                let r = train_one(g);
                done.lock().expect("no lane panicked").push(r);
            });
        }
    });
    for r in done.into_inner().expect("no lane panicked") {
        for (i, res) in r? {
            results[i] = Some(res);
        }
    }
    // The members of groups never started: interrupted before their first step.
    for &g in &todo {
        for &i in &groups[g] {
            if results[i].is_none() {
                results[i] = Some(RunResult::not_started(&configs[i]));
            }
        }
    }
    Ok(results)
}

/// What each group of `groups` finds on disk: another shard's, finished,
/// checkpointed at one step, or fresh. Finished runs' results go into
/// `results` (and the dashboard), even when their group trains again for a
/// member that has none (to the same numbers).
fn group_starts(
    configs: &[RunConfig],
    ids: &[usize],
    groups: &[Vec<usize>],
    opts: &RunnerOptions,
    dashboard: &dyn Progress,
    wanted: Option<&[bool]>,
    results: &mut [Option<RunResult>],
) -> Result<Vec<GroupStart>> {
    let wanted_group = |members: &[usize]| wanted.is_none_or(|w| w[members[0]]);
    let resuming = opts.resuming();
    let mut starts = Vec::with_capacity(groups.len());
    for members in groups {
        let start = if !wanted_group(members) {
            GroupStart::Elsewhere
        } else if resuming {
            let found: Vec<Found> = members
                .iter()
                .map(|&i| {
                    let dir = opts.out.join(&configs[i].name);
                    look(&dir, &configs[i], opts.draw.is_some())
                })
                .collect::<Result<_>>()?;
            // Finished runs keep their results, even when their group trains
            // again for a member that has none (to the same numbers).
            for (&i, f) in members.iter().zip(&found) {
                if let Found::Finished(r) = f {
                    dashboard.mark_done(ids[i], configs[i].steps, "already done (resume)");
                    results[i] = Some((**r).clone());
                }
            }
            if found.iter().all(|f| matches!(f, Found::Finished(_))) {
                GroupStart::Finished
            } else {
                let cks: Vec<Checkpoint> = found
                    .into_iter()
                    .filter_map(|f| match f {
                        Found::Checkpoint(c) => Some(*c),
                        _ => None,
                    })
                    .collect();
                let pause = opts.end_step(&configs[members[0]]);
                if cks.len() == members.len() && cks.iter().all(|c| c.step == pause) {
                    GroupStart::Paused(cks)
                } else if cks.len() == members.len() && cks.iter().all(|c| c.step == cks[0].step) {
                    GroupStart::Resume(cks)
                } else {
                    GroupStart::Fresh
                }
            }
        } else {
            GroupStart::Fresh
        };
        starts.push(start);
    }
    Ok(starts)
}

/// Says what a resume continues (done, from which steps, from the start) and
/// starts those dashboard lines where they stopped.
fn say_resumed(
    ids: &[usize],
    groups: &[Vec<usize>],
    starts: &[GroupStart],
    opts: &RunnerOptions,
    dashboard: &dyn Progress,
) {
    // Say what is resumed, and start those lines where they stopped.
    let (mut done, mut fresh) = (0usize, 0usize);
    let mut from: std::collections::BTreeMap<usize, usize> = Default::default();
    for (members, start) in groups.iter().zip(starts) {
        match start {
            GroupStart::Finished => done += members.len(),
            GroupStart::Resume(cks) => {
                for (&i, ck) in members.iter().zip(cks) {
                    dashboard.resume_at(ids[i], ck.step);
                }
                *from.entry(cks[0].step).or_default() += members.len();
            }
            GroupStart::Fresh => fresh += members.len(),
            GroupStart::Elsewhere | GroupStart::Paused(_) => {}
        }
    }
    let mut parts = vec![format!("{done} done")];
    parts.extend(from.iter().map(|(step, n)| format!("{n} from step {step}")));
    if fresh > 0 {
        parts.push(format!("{fresh} from the start"));
    }
    let mine = done + fresh + from.values().sum::<usize>();
    // A shard that finds nothing of its own says nothing.
    if opts.resume || done + from.len() > 0 {
        dashboard.println(&format!(
            "resuming {mine} run{}: {}",
            if mine == 1 { "" } else { "s" },
            parts.join(", ")
        ));
    }
}

/// Writes the folders of a trained group's runs (`members`: their indices in
/// the plan) that have no result yet: an interrupted run's config, metrics
/// and checkpoint, or a finished run's files. Returns their results.
fn write_group<T: Real>(
    outcome: &crate::train::GroupOutcome<T>,
    members: &[usize],
    results: &[Option<RunResult>],
    split: &Split<T>,
    opts: &RunnerOptions,
) -> Result<GroupResults> {
    let sizes = [split.train.len(), split.val.len(), split.test.len()];
    let saved = |c: &RunConfig| SavedConfig {
        config: c.clone(),
        init_seed: c.init_seed(),
        data_dir: opts.data_dir.clone(),
        sizes,
        version: env!("CARGO_PKG_VERSION").to_string(),
        blas_threads: 1,
        threads: opts.threads,
        jobs: opts.jobs,
        max_group: opts.max_group,
        blas: blas::describe(),
        blas_kernel: blas::kernel(),
        blas_kernel_source: blas::kernel_source(),
        layer0_kernel: c.precision.layer0_kernel().to_string(),
    };
    let mut out = Vec::new();
    for (c, run) in outcome.runs.iter().enumerate() {
        if results[members[c]].is_some() {
            continue; // finished before: its files stay as they are
        }
        let dir = opts.out.join(&run.config.name);
        if let Some(state) = &outcome.state {
            // Interrupted: keep the state and what was logged, no result yet.
            create_dir(&dir)?;
            crate::folder::record(&dir, crate::folder::FolderKind::Run)?;
            write_json(&dir.join("config.json"), &saved(&run.config))?;
            write_atomic(&dir.join("metrics.csv"), &metrics_csv(run)?)?;
            Checkpoint::from_state(state, c, &run.config).save(&dir.join(checkpoint::FILE))?;
            let _ = std::fs::remove_file(dir.join("result.json"));
            out.push((members[c], RunResult::from_outcome(run)));
        } else {
            let r = write_run(
                &dir,
                run,
                &saved(&run.config),
                (&split.preprocess, &split.class_names),
            )?;
            if let Some(draw) = opts.draw {
                draw(&dir, run, &split.class_names)?;
            }
            let _ = std::fs::remove_file(dir.join(checkpoint::FILE));
            out.push((members[c], r));
        }
    }
    Ok(out)
}

/// Trains configurations that may use different splits or precisions: builds each
/// (split, precision) pair's data once from `data` and runs its configurations
/// with [`run_plan`], with the dashboard drawing meanwhile. Results come back in
/// the order of `configs`. With [`RunnerOptions::shard`], use [`run_configs_shard`].
pub fn run_configs(
    configs: &[RunConfig],
    data: &crate::data::RawData,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
) -> Result<Vec<RunResult>> {
    anyhow::ensure!(
        opts.shard.is_none(),
        "run_configs trains every configuration: use run_configs_shard for a shard"
    );
    Ok(run_configs_shard(configs, data, opts, control, dashboard)?
        .into_iter()
        .map(|o| o.expect("every configuration ran"))
        .collect())
}

/// Refuses configurations planned for other data than `data`, or flipping
/// digits ([`crate::data::RawData::check_fits`]).
pub fn check_data(configs: &[RunConfig], data: &crate::data::RawData) -> Result<()> {
    let planned: Vec<_> = configs
        .iter()
        .map(|c| (c.name.clone(), c.split.data, c.augment.flip || c.tta))
        .collect();
    data.check_fits(&planned)
}

/// Which configurations of `configs` this process trains: all of them, or
/// those of [`RunnerOptions::shard`] ([`super::shard::members`]).
pub fn trained_here(configs: &[RunConfig], opts: &RunnerOptions) -> Vec<bool> {
    match opts.shard {
        Some(shard) => super::shard::members(configs, opts.max_group, shard),
        None => vec![true; configs.len()],
    }
}

/// The configurations of [`trained_here`] themselves, in plan order (what
/// this process's dashboard shows).
pub fn configs_here(configs: &[RunConfig], opts: &RunnerOptions) -> Vec<RunConfig> {
    configs
        .iter()
        .zip(trained_here(configs, opts))
        .filter(|(_, here)| *here)
        .map(|(c, _)| c.clone())
        .collect()
}

/// [`run_configs`] for a shard or the whole plan: the configurations of
/// [`trained_here`] have a result (in the order of `configs`), the others
/// `None`. The dashboard's ids are positions among the configurations
/// trained here, so it is built from those alone.
pub fn run_configs_shard(
    configs: &[RunConfig],
    data: &crate::data::RawData,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
) -> Result<Vec<Option<RunResult>>> {
    check_data(configs, data)?;
    let here = trained_here(configs, opts);
    // Dashboard id of each configuration trained here.
    let mut ids = vec![usize::MAX; configs.len()];
    for (n, i) in (0..configs.len()).filter(|&i| here[i]).enumerate() {
        ids[i] = n;
    }
    create_dir(&opts.out)?;
    if opts.guard {
        guard_plan(configs, opts)?;
    }
    let mut out = Ok(Vec::new());
    dashboard.show_while(&mut || {
        out = train_parts(configs, &ids, &here, data, opts, control, dashboard)
    });
    out
}

/// Trains the configurations of `configs` that `here` marks, part by part
/// ([`super::shard::plan_parts`]: each (split, precision)'s data built once),
/// with dashboard ids `ids`; the others' results are `None`. The caller shows
/// the dashboard meanwhile.
pub fn train_parts(
    configs: &[RunConfig],
    ids: &[usize],
    here: &[bool],
    data: &crate::data::RawData,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
) -> Result<Vec<Option<RunResult>>> {
    use crate::nn::Precision;
    let mut out: Vec<Option<RunResult>> = vec![None; configs.len()];
    for idx in super::shard::plan_parts(configs) {
        let (spec, precision) = (configs[idx[0]].split, configs[idx[0]].precision);
        if !idx.iter().any(|&i| here[i]) {
            continue; // nothing of this part here: its data is not built
        }
        if control.stopped() {
            // Interrupted: the later parts' data is not even built.
            for &i in idx.iter().filter(|&&i| here[i]) {
                out[i] = Some(RunResult::not_started(&configs[i]));
            }
            continue;
        }
        let part: Vec<RunConfig> = idx.iter().map(|&i| configs[i].clone()).collect();
        let part_ids: Vec<usize> = idx.iter().map(|&i| ids[i]).collect();
        let wanted: Vec<bool> = idx.iter().map(|&i| here[i]).collect();
        let runs = match precision {
            Precision::F32 | Precision::Bf16 | Precision::Int16 | Precision::Fast => run_plan_part(
                &part,
                &part_ids,
                &Split::<f32>::new(data, spec)?,
                opts,
                control,
                dashboard,
                Some(&wanted),
            )?,
            Precision::F64 => run_plan_part(
                &part,
                &part_ids,
                &Split::<f64>::new(data, spec)?,
                opts,
                control,
                dashboard,
                Some(&wanted),
            )?,
        };
        for (i, r) in idx.into_iter().zip(runs) {
            out[i] = r;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SplitSpec;
    use crate::nn::Precision;
    use crate::train::{EvalTrain, Schedule};

    fn config(name: &str, ns: usize) -> RunConfig {
        RunConfig {
            name: name.into(),
            hidden: vec![50],
            lambda: 0.01,
            schedule: Schedule::Cyclic {
                eta_min: 1e-5,
                eta_max: 0.1,
                ns,
            },
            batch: 100,
            steps: 4 * ns,
            shuffle: false,
            seed: 1,
            split: SplitSpec::default(),
            precision: Precision::F32,
            log_every: ns,
            eval_train: EvalTrain::Sample(5000),
            ..RunConfig::default()
        }
    }

    fn opts(out: &Path, resume: bool, force: bool) -> RunnerOptions {
        RunnerOptions {
            max_group: 4,
            out: out.to_path_buf(),
            resume,
            guard: true,
            force,
            ..Default::default()
        }
    }

    #[test]
    fn a_resume_with_another_plan_is_refused_naming_the_differences() {
        let dir = tempfile::tempdir().unwrap();
        let old = vec![config("a", 500), config("b", 500)];
        guard_plan(&old, &opts(dir.path(), false, false)).unwrap();
        // The same plan resumes.
        guard_plan(&old, &opts(dir.path(), true, false)).unwrap();
        let new = vec![config("a", 300), config("b", 300)];
        let e = guard_plan(&new, &opts(dir.path(), true, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("would mix two experiments"), "{e}");
        assert!(e.contains("schedule.ns: 500 in the folder, 300 now"), "{e}");
        assert!(e.contains("steps: 2000 in the folder, 1200 now"), "{e}");
        let mut grouped = opts(dir.path(), true, false);
        grouped.max_group = 8;
        let e = guard_plan(&old, &grouped).unwrap_err().to_string();
        assert!(e.contains("max_group: 4 in the folder, 8 now"), "{e}");
        let fewer = vec![config("a", 500)];
        let e = guard_plan(&fewer, &opts(dir.path(), true, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runs: 2 in the folder, 1 now"), "{e}");
        // Nothing was changed by the refusals.
        let kept: PlanRecord =
            serde_json::from_slice(&std::fs::read(dir.path().join(PLAN_FILE)).unwrap()).unwrap();
        assert_eq!(kept.runs, old);
    }

    #[test]
    fn a_new_plan_refuses_an_old_folder_unless_forced_which_removes_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<RunConfig> = (0..8).map(|i| config(&format!("old{i}"), 500)).collect();
        guard_plan(&old, &opts(dir.path(), false, false)).unwrap();
        for c in &old {
            std::fs::create_dir_all(dir.path().join(&c.name)).unwrap();
            std::fs::write(dir.path().join(&c.name).join("result.json"), "{}").unwrap();
        }
        std::fs::write(dir.path().join("results.csv"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let new = vec![config("new0", 500), config("new1", 500)];
        let e = guard_plan(&new, &opts(dir.path(), false, false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds an earlier run of 8 configurations"),
            "{e}"
        );
        assert!(e.contains("--resume") && e.contains("--force"), "{e}");
        assert!(
            dir.path().join("old3/result.json").exists(),
            "refusal removes nothing"
        );
        guard_plan(&new, &opts(dir.path(), false, true)).unwrap();
        for c in &old {
            assert!(!dir.path().join(&c.name).exists(), "{} left behind", c.name);
        }
        assert!(!dir.path().join("results.csv").exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "files of no run stay"
        );
        let now: PlanRecord =
            serde_json::from_slice(&std::fs::read(dir.path().join(PLAN_FILE)).unwrap()).unwrap();
        assert_eq!(now.runs, new);
    }
}
