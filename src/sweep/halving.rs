//! Successive halving and Hyperband in lockstep (plans in [`super::ladder`]).
//! A stage trains every bracket's live configurations to their next rung in
//! the usual lockstep groups and pauses them there with a checkpoint. Each
//! rung then ranks its configurations on the validation set: the best go on
//! from their checkpoints, regrouped, and the others stop, their figures at
//! the rung as their result (status `pruned`). A cyclical schedule's rate and
//! the data order depend on the step alone, so a survivor continued to the
//! top budget is trained exactly as a run of that length.
//!
//! Every decision is written to `rungs.json` before anything acts on it, so an
//! interrupted search resumes from the folder alone, to the same bits.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::ladder::{Ladder, RUNGS_FILE};
use super::runner::{guard_plan, paused_result, train_parts, Progress, RunnerOptions};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::output::{nan_from_null, RunResult};
use crate::train::{Control, RunConfig, Status};
use crate::util::{create_dir, write_json};

/// One configuration at one rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungEntry {
    /// Run name.
    pub name: String,
    /// Index in the plan.
    pub index: usize,
    /// Steps done at the rung (where it diverged, if it did).
    pub steps: usize,
    /// Validation accuracy at the rung (0-1).
    #[serde(deserialize_with = "nan_from_null")]
    pub val_acc: f64,
    /// Validation cost at the rung.
    #[serde(deserialize_with = "nan_from_null")]
    pub val_cost: f64,
    /// Training accuracy at the rung (on the logged sample).
    #[serde(deserialize_with = "nan_from_null")]
    pub train_acc: f64,
    /// Training cost at the rung.
    #[serde(deserialize_with = "nan_from_null")]
    pub train_cost: f64,
    /// Whether it diverged before the rung.
    pub diverged: bool,
    /// Whether it goes on (every configuration of a bracket's last rung).
    pub kept: bool,
}

/// A decided rung: its configurations, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// Bracket (0 for plain successive halving).
    pub bracket: usize,
    /// Rung within the bracket, from 0.
    pub rung: usize,
    /// Budget reached, in the ladder's unit.
    pub budget: usize,
    /// Every configuration that reached it, ranked by [`rank`].
    pub entries: Vec<RungEntry>,
}

/// What `rungs.json` holds: the plan and every rung decided so far, in the
/// order decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungRecord {
    /// The brackets and their budgets.
    pub ladder: Ladder,
    /// Decided rungs.
    pub rungs: Vec<Rung>,
}

impl RungRecord {
    /// The record of `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<RungRecord>> {
        let path = dir.join(RUNGS_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is not a shallow rung record: start over with --force, or use another --out",
                path.display()
            )
        })
    }

    /// The results tables' column of the budget each configuration reached
    /// ("1 cycle" for one pruned at the first rung), in plan order.
    pub fn budget_column(&self) -> (String, Vec<String>) {
        let cells = self
            .last_rungs()
            .iter()
            .map(|r| {
                r.map_or_else(
                    || "-".to_string(),
                    |(rung, _)| self.ladder.unit.count(rung.budget),
                )
            })
            .collect();
        ("budget".to_string(), cells)
    }

    fn find(&self, bracket: usize, rung: usize) -> Option<&Rung> {
        self.rungs
            .iter()
            .find(|r| r.bracket == bracket && r.rung == rung)
    }

    /// Where each configuration of the plan stopped: the last rung it
    /// reached (bracket, rung, budget) and whether it was kept there.
    pub fn last_rungs(&self) -> Vec<Option<(&Rung, &RungEntry)>> {
        let mut out = vec![None; self.ladder.configurations()];
        for rung in &self.rungs {
            for e in &rung.entries {
                if let Some(slot) = out.get_mut(e.index) {
                    *slot = Some((rung, e));
                }
            }
        }
        out
    }
}

/// Orders a rung: highest validation accuracy first, then lowest validation
/// cost, then plan order; diverged runs and figures that are not finite last.
pub fn rank(entries: &mut [RungEntry]) {
    let key = |e: &RungEntry| {
        let ok = !e.diverged && e.val_acc.is_finite();
        (
            !ok,
            if ok { -e.val_acc } else { 0.0 },
            if e.val_cost.is_finite() {
                e.val_cost
            } else {
                f64::INFINITY
            },
            e.index,
        )
    };
    entries.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
}

/// Refuses configurations the ladder cannot cut into rungs: each one's steps
/// must be a whole number of budget units at the top budget.
pub fn check(configs: &[RunConfig], ladder: &Ladder) -> Result<()> {
    if configs.len() != ladder.configurations() {
        bail!(
            "the pruned search's brackets hold {} configurations and the sweep has {}",
            ladder.configurations(),
            configs.len()
        );
    }
    if let Some(c) = configs.iter().find(|c| c.steps % ladder.max != 0) {
        bail!(
            "{} trains {} steps, which is not {} of equal length: leave --steps out and give the budget as \
             --min-{unit} and --max-{unit}",
            c.name,
            c.steps,
            ladder.unit.count(ladder.max),
            unit = ladder.unit.name()
        );
    }
    Ok(())
}

/// Runs the pruned search of `opts.ladder` over `configs` (every rung, from
/// what the folder holds on resume; or one shard's part of a rung, or one
/// rung's decision, as `mode` says), with the dashboard drawing meanwhile.
/// `data` is needed to train (not to decide).
/// Returns every configuration's result in plan order: done, pruned (its
/// figures at its last rung), diverged, paused at a rung, or interrupted
/// (also those this call did not reach).
pub fn run_halving(
    configs: &[RunConfig],
    data: Option<&crate::data::RawData>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
    mode: HalvingMode,
) -> Result<Vec<RunResult>> {
    let ladder = opts
        .ladder
        .clone()
        .context("a pruned search needs its brackets")?;
    check(configs, &ladder)?;
    create_dir(&opts.out)?;
    if opts.guard {
        // A decision joins the folder's plan as a resume does.
        guard_plan(
            configs,
            &RunnerOptions {
                resume: opts.resume || mode == HalvingMode::Decide,
                ..opts.clone()
            },
        )?;
    }
    let found = if opts.resuming() || mode != HalvingMode::All {
        RungRecord::read(&opts.out)?.filter(|r| r.ladder == ladder)
    } else {
        None
    };
    let mut record = match found {
        Some(r) => r,
        None => {
            let fresh = RungRecord {
                ladder,
                rungs: Vec::new(),
            };
            write_json(&opts.out.join(RUNGS_FILE), &fresh)?;
            fresh
        }
    };
    let mut results: Vec<Option<RunResult>> = vec![None; configs.len()];
    let mut out = Ok(());
    dashboard.show_while(&mut || {
        out = stages(
            configs,
            data,
            opts,
            control,
            dashboard,
            mode,
            &mut record,
            &mut results,
        )
    });
    out?;
    Ok(results
        .into_iter()
        .zip(configs)
        .map(|(r, c)| r.unwrap_or_else(|| RunResult::not_started(c)))
        .collect())
}

/// What a call of [`run_halving`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalvingMode {
    /// Every rung: train, decide, go on.
    All,
    /// This shard's lockstep groups of the first undecided rung, then stop
    /// (a Slurm array task; [`RunnerOptions::shard`] names the shard).
    Shard,
    /// Decide the first undecided rung from what the shards left in the
    /// folder (refused, naming the runs, when any has not reached it), and
    /// stop before training anything.
    Decide,
}

/// One stage's work: the configurations that train to their next rung, the
/// step each pauses at (none at a bracket's last rung), and the brackets
/// whose rung is decided after it.
struct StagePlan {
    pause: BTreeMap<String, usize>,
    train: Vec<usize>,
    open: Vec<usize>,
}

/// The stages of [`run_halving`]: each trains the undecided rungs of every
/// bracket that has one (as `mode` says), then decides them.
#[allow(clippy::too_many_arguments)]
fn stages(
    configs: &[RunConfig],
    data: Option<&crate::data::RawData>,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
    mode: HalvingMode,
    record: &mut RungRecord,
    results: &mut [Option<RunResult>],
) -> Result<()> {
    if let Some(data) = data {
        super::runner::check_data(configs, data)?;
    }
    let ladder = record.ladder.clone();
    let mut alive: Vec<Vec<usize>> = ladder.brackets.iter().map(|b| b.members.clone()).collect();
    let mut decided_here = false;
    for stage in 0..ladder.stages() {
        let plan = plan_stage(configs, opts, dashboard, record, stage, &mut alive, results)?;
        if plan.open.is_empty() {
            continue;
        }
        if mode == HalvingMode::Decide && decided_here {
            return Ok(()); // the next rung trains first
        }
        let (stage_configs, stage_opts) = stage_run(configs, opts, &plan);
        if mode == HalvingMode::Decide {
            for (&i, r) in
                plan.train
                    .iter()
                    .zip(rung_from_disk(&stage_configs, &stage_opts, stage)?)
            {
                results[i] = Some(r);
            }
        } else {
            dashboard.stage(
                stage,
                ladder.stages(),
                &stage_line(&ladder, stage, &plan.open, &alive),
            );
            let here = match (mode, opts.shard) {
                (HalvingMode::Shard, Some(shard)) => {
                    stage_members(&stage_configs, &stage_opts, shard)
                }
                _ => vec![true; plan.train.len()],
            };
            let data = data.context("a pruned search's training needs the images")?;
            let got = train_parts(
                &stage_configs,
                &plan.train,
                &here,
                data,
                &stage_opts,
                control,
                dashboard,
            )?;
            let mut stopped = false;
            for (&i, r) in plan.train.iter().zip(got) {
                stopped |= r.as_ref().is_some_and(|r| r.status == Status::Interrupted);
                results[i] = r;
            }
            if mode == HalvingMode::Shard {
                return Ok(()); // `sweep merge` decides once every shard is done
            }
            if stopped {
                // Some groups did not reach the rung: it is decided on resume.
                for &i in &plan.train {
                    if let Some(r) = results[i].as_mut().filter(|r| r.status == Status::Paused) {
                        r.status = Status::Interrupted;
                    }
                }
                return Ok(());
            }
        }
        for &b in &plan.open {
            let rung = decide(&ladder, b, stage, &alive[b], results);
            alive[b] = kept(&rung);
            record.rungs.push(rung);
        }
        // The decisions are on disk before any run is marked pruned.
        write_json(&opts.out.join(RUNGS_FILE), record)?;
        for rung in record
            .rungs
            .iter()
            .filter(|r| plan.open.contains(&r.bracket) && r.rung == stage)
        {
            for e in rung.entries.iter().filter(|e| !e.kept) {
                let r = prune(&opts.out, &configs[e.index])?;
                dashboard.pruned(e.index, e.steps, &pruned_line(&r, rung, &ladder));
                results[e.index] = Some(r);
            }
            let best = rung.entries.first().map_or(f64::NAN, |e| e.val_acc);
            dashboard.decided(best, &decided_line(&ladder, rung, configs));
        }
        decided_here = true;
        if control.stopped() {
            return Ok(());
        }
    }
    Ok(())
}

/// Stage `stage` of the plan: brackets whose rung the record has decided
/// take their results from the folder and their survivors as `alive`; the
/// others' live configurations train.
fn plan_stage(
    configs: &[RunConfig],
    opts: &RunnerOptions,
    dashboard: &dyn Progress,
    record: &RungRecord,
    stage: usize,
    alive: &mut [Vec<usize>],
    results: &mut [Option<RunResult>],
) -> Result<StagePlan> {
    let ladder = &record.ladder;
    let mut plan = StagePlan {
        pause: BTreeMap::new(),
        train: Vec::new(),
        open: Vec::new(),
    };
    for (b, bracket) in ladder.brackets.iter().enumerate() {
        let Some(&budget) = bracket.budgets.get(stage) else {
            continue;
        };
        let last = stage + 1 == bracket.budgets.len();
        if let Some(rung) = record.find(b, stage) {
            // Decided before this process: results from the folder.
            for e in &rung.entries {
                let r = if e.kept && last {
                    read_result(&opts.out, &configs[e.index])?
                } else if !e.kept {
                    let r = prune(&opts.out, &configs[e.index])?;
                    dashboard.pruned(e.index, e.steps, &pruned_line(&r, rung, ladder));
                    r
                } else {
                    continue;
                };
                results[e.index] = Some(r);
            }
            alive[b] = kept(rung);
            continue;
        }
        if !last {
            for &i in &alive[b] {
                let step = ladder.step_of(configs[i].steps, budget);
                plan.pause.insert(configs[i].name.clone(), step);
            }
        }
        plan.train.extend(&alive[b]);
        plan.open.push(b);
    }
    plan.train.sort_unstable();
    Ok(plan)
}

/// The configurations of a stage and the runner's options for it: each
/// pauses at its rung, and nothing re-records the plan.
fn stage_run(
    configs: &[RunConfig],
    opts: &RunnerOptions,
    plan: &StagePlan,
) -> (Vec<RunConfig>, RunnerOptions) {
    let stage_configs = plan.train.iter().map(|&i| configs[i].clone()).collect();
    let stage_opts = RunnerOptions {
        pause_at: Some(plan.pause.clone()),
        guard: false,
        ..opts.clone()
    };
    (stage_configs, stage_opts)
}

/// Which configurations of a stage `shard` trains: whole lockstep groups of
/// the stage (grouped as the runner groups them, part by part), dealt as
/// [`super::shard::assign`] deals a plan's.
pub fn stage_members(
    configs: &[RunConfig],
    opts: &RunnerOptions,
    shard: super::shard::Shard,
) -> Vec<bool> {
    let groups =
        super::shard::plan_groups_by(configs, |part| super::runner::stage_groups(part, opts));
    super::shard::members_of(configs, &groups, shard)
}

/// Every configuration of a stage as the shards left it in the folder: at
/// its rung's checkpoint, or finished at a bracket's last rung. Refused,
/// naming those that are not there yet.
fn rung_from_disk(
    configs: &[RunConfig],
    opts: &RunnerOptions,
    stage: usize,
) -> Result<Vec<RunResult>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in configs {
        let dir = opts.out.join(&c.name);
        let end = opts.end_step(c);
        let found = if end == c.steps {
            read_result(&opts.out, c)
                .ok()
                .filter(|r| matches!(r.status, Status::Done | Status::Diverged))
        } else {
            let ck = dir.join(checkpoint::FILE);
            Checkpoint::load(&ck)
                .ok()
                .filter(|ck| ck.step == end && ck.config == *c)
                .map(|ck| paused_result(&ck))
        };
        match found {
            Some(r) => out.push(r),
            None => missing.push(c.name.clone()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "rung {} is not finished in {}: {} of {} runs have not reached it ({}). Run every shard of this rung \
             first (the same command with --shard K/N; the --slurm chain runs them in order)",
            stage + 1,
            opts.out.display(),
            missing.len(),
            configs.len(),
            missing.join(", ")
        );
    }
    Ok(out)
}

/// Ranks bracket `b`'s configurations `alive` at rung `stage` from their
/// results, and marks those that go on.
fn decide(
    ladder: &Ladder,
    b: usize,
    stage: usize,
    alive: &[usize],
    results: &[Option<RunResult>],
) -> Rung {
    let bracket = &ladder.brackets[b];
    let mut entries: Vec<RungEntry> = alive
        .iter()
        .map(|&i| {
            let r = results[i].as_ref().expect("trained this stage");
            RungEntry {
                name: r.name.clone(),
                index: i,
                steps: r.steps,
                val_acc: r.val_acc,
                val_cost: r.val_cost,
                train_acc: r.train_acc,
                train_cost: r.train_cost,
                diverged: r.status == Status::Diverged,
                kept: false,
            }
        })
        .collect();
    rank(&mut entries);
    let keep = bracket.keep.get(stage).copied().unwrap_or(entries.len());
    for e in entries.iter_mut().take(keep) {
        e.kept = true;
    }
    Rung {
        bracket: b,
        rung: stage,
        budget: bracket.budgets[stage],
        entries,
    }
}

/// The configurations a rung keeps, in plan order.
fn kept(rung: &Rung) -> Vec<usize> {
    let mut k: Vec<usize> = rung
        .entries
        .iter()
        .filter(|e| e.kept)
        .map(|e| e.index)
        .collect();
    k.sort_unstable();
    k
}

/// The result of a finished run, from its folder.
fn read_result(dir: &Path, config: &RunConfig) -> Result<RunResult> {
    let path = dir.join(&config.name).join("result.json");
    serde_json::from_slice(&std::fs::read(&path).with_context(|| {
        format!(
            "{} is missing, though {RUNGS_FILE} says the run finished: start over with --force",
            path.display()
        )
    })?)
    .with_context(|| format!("{} is not a shallow result", path.display()))
}

/// Marks a run pruned at its rung: its result (the figures of its rung
/// checkpoint) is written, then the checkpoint removed. Idempotent: a run
/// already marked is read back.
fn prune(dir: &Path, config: &RunConfig) -> Result<RunResult> {
    let run = dir.join(&config.name);
    let ck_path = run.join(checkpoint::FILE);
    if !ck_path.exists() {
        return read_result(dir, config);
    }
    let ck = Checkpoint::load(&ck_path)?;
    let mut r = paused_result(&ck);
    if r.status == Status::Paused {
        r.status = Status::Pruned;
    }
    write_json(&run.join("result.json"), &r)?;
    std::fs::remove_file(&ck_path)
        .with_context(|| format!("cannot remove {}", ck_path.display()))?;
    Ok(r)
}

/// "pruned at 1 cycle: val 41.20% (rank 12 of 27)".
fn pruned_line(r: &RunResult, rung: &Rung, ladder: &Ladder) -> String {
    let rank = rung
        .entries
        .iter()
        .position(|e| e.name == r.name)
        .map_or(0, |p| p + 1);
    if r.status == Status::Diverged {
        return format!("pruned at {}: diverged", ladder.unit.count(rung.budget));
    }
    format!(
        "pruned at {}: val {:.2}%  rank {rank} of {}",
        ladder.unit.count(rung.budget),
        100.0 * r.val_acc,
        rung.entries.len()
    )
}

/// "rung 1 of 3: 27 configurations to 1 cycle".
fn stage_line(ladder: &Ladder, stage: usize, open: &[usize], alive: &[Vec<usize>]) -> String {
    let parts: Vec<String> = open
        .iter()
        .map(|&b| {
            format!(
                "{} to {}",
                alive[b].len(),
                ladder.unit.count(ladder.brackets[b].budgets[stage])
            )
        })
        .collect();
    format!(
        "rung {} of {}: {}",
        stage + 1,
        ladder.stages(),
        parts.join(", ")
    )
}

/// "rung 1 at 1 cycle: 9 kept, 18 pruned; best val 45.10% (name)".
fn decided_line(ladder: &Ladder, rung: &Rung, configs: &[RunConfig]) -> String {
    let kept = rung.entries.iter().filter(|e| e.kept).count();
    let best = rung.entries.first().map_or(String::new(), |e| {
        format!(
            "; best val {:.2}% ({})",
            100.0 * e.val_acc,
            configs[e.index].name
        )
    });
    let bracket = if ladder.brackets.len() > 1 {
        format!("bracket {}, ", rung.bracket + 1)
    } else {
        String::new()
    };
    let line = format!(
        "{bracket}rung {} at {}: {kept} kept, {} pruned",
        rung.rung + 1,
        ladder.unit.count(rung.budget),
        rung.entries.len() - kept
    );
    // The best's name only where the line still fits 80 columns.
    [
        format!("{line}{best}"),
        format!("{line}{}", best.split(" (").next().unwrap_or("")),
    ]
    .into_iter()
    .find(|l| l.chars().count() <= 80)
    .unwrap_or(line)
}
