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
/// what the folder holds on resume), with the dashboard drawing meanwhile.
/// Returns every configuration's result in plan order: done, pruned (its
/// figures at its last rung), diverged, or interrupted.
pub fn run_halving(
    configs: &[RunConfig],
    data: &crate::data::Cifar10,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
) -> Result<Vec<RunResult>> {
    let ladder = opts
        .ladder
        .clone()
        .context("a pruned search needs its brackets")?;
    check(configs, &ladder)?;
    create_dir(&opts.out)?;
    if opts.guard {
        guard_plan(configs, opts)?;
    }
    let found = if opts.resume {
        RungRecord::read(&opts.out)?
    } else {
        None
    };
    let mut record = match found {
        Some(r) if r.ladder == ladder => r,
        _ => RungRecord {
            ladder,
            rungs: Vec::new(),
        },
    };
    write_json(&opts.out.join(RUNGS_FILE), &record)?;
    let mut results: Vec<Option<RunResult>> = vec![None; configs.len()];
    let mut out = Ok(());
    dashboard.show_while(&mut || {
        out = stages(
            configs,
            data,
            opts,
            control,
            dashboard,
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

/// The stages of [`run_halving`]: each trains the undecided rungs of every
/// bracket that has one, then decides them.
fn stages(
    configs: &[RunConfig],
    data: &crate::data::Cifar10,
    opts: &RunnerOptions,
    control: &Control,
    dashboard: &dyn Progress,
    record: &mut RungRecord,
    results: &mut [Option<RunResult>],
) -> Result<()> {
    let ladder = record.ladder.clone();
    let mut alive: Vec<Vec<usize>> = ladder.brackets.iter().map(|b| b.members.clone()).collect();
    for stage in 0..ladder.stages() {
        let mut pause = BTreeMap::new();
        let mut train: Vec<usize> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for (b, bracket) in ladder.brackets.iter().enumerate() {
            let Some(&budget) = bracket.budgets.get(stage) else {
                continue;
            };
            if let Some(rung) = record.find(b, stage) {
                // Decided before this process: results from the folder.
                let last = stage + 1 == bracket.budgets.len();
                for e in &rung.entries {
                    let r = if e.kept && last {
                        read_result(&opts.out, &configs[e.index])?
                    } else if !e.kept {
                        let r = prune(&opts.out, &configs[e.index])?;
                        dashboard.pruned(e.index, e.steps, &pruned_line(&r, rung, &ladder));
                        r
                    } else {
                        continue;
                    };
                    results[e.index] = Some(r);
                }
                alive[b] = kept(rung);
                continue;
            }
            if stage + 1 < bracket.budgets.len() {
                for &i in &alive[b] {
                    pause.insert(
                        configs[i].name.clone(),
                        ladder.step_of(configs[i].steps, budget),
                    );
                }
            }
            train.extend(&alive[b]);
            open.push(b);
        }
        if open.is_empty() {
            continue;
        }
        train.sort_unstable();
        dashboard.stage(
            stage,
            ladder.stages(),
            &stage_line(&ladder, stage, &open, &alive),
        );
        let stage_configs: Vec<RunConfig> = train.iter().map(|&i| configs[i].clone()).collect();
        let stage_opts = RunnerOptions {
            pause_at: Some(pause),
            guard: false,
            ..opts.clone()
        };
        let got = train_parts(
            &stage_configs,
            &train,
            &vec![true; train.len()],
            data,
            &stage_opts,
            control,
            dashboard,
        )?;
        let mut stopped = false;
        for (&i, r) in train.iter().zip(got) {
            let r = r.context("every configuration of a stage trains")?;
            stopped |= r.status == Status::Interrupted;
            results[i] = Some(r);
        }
        if stopped {
            // Some groups did not reach the rung: it is decided on resume.
            for &i in &train {
                if let Some(r) = results[i].as_mut().filter(|r| r.status == Status::Paused) {
                    r.status = Status::Interrupted;
                }
            }
            return Ok(());
        }
        for &b in &open {
            let rung = decide(&ladder, b, stage, &alive[b], results);
            alive[b] = kept(&rung);
            record.rungs.push(rung);
        }
        // The decisions are on disk before any run is marked pruned.
        write_json(&opts.out.join(RUNGS_FILE), record)?;
        for rung in record
            .rungs
            .iter()
            .filter(|r| open.contains(&r.bracket) && r.rung == stage)
        {
            for e in rung.entries.iter().filter(|e| !e.kept) {
                let r = prune(&opts.out, &configs[e.index])?;
                dashboard.pruned(e.index, e.steps, &pruned_line(&r, rung, &ladder));
                results[e.index] = Some(r);
            }
            dashboard.println(&decided_line(&ladder, rung, configs));
        }
        if control.stopped() {
            return Ok(());
        }
    }
    Ok(())
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
    format!(
        "{bracket}rung {} at {}: {kept} kept, {} pruned{best}",
        rung.rung + 1,
        ladder.unit.count(rung.budget),
        rung.entries.len() - kept
    )
}
