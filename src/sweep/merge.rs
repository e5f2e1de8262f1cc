//! `shallow sweep merge`: gathers the run folders of a sharded sweep (one
//! shared folder, or one folder per shard) into one sweep folder and rebuilds
//! its tables and records (the command then draws the summary picture and the
//! report), after checking that every shard ran the same plan and that every
//! configuration of the plan has finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::plan::SweepSpec;
use super::results::{self, RunInfo};
use super::runner::{plan_differences, PlanRecord, PLAN_FILE};
use super::shard::{self, Shard, ShardRecord};
use crate::train::output::{RunResult, SavedConfig};
use crate::train::Status;
use crate::util::{create_dir, write_json};

/// What a merge found and wrote.
#[derive(Debug)]
pub struct Merged {
    /// The merged sweep folder.
    pub out: PathBuf,
    /// The sweep's specification (sweep.json), when a shard recorded it.
    pub spec: Option<SweepSpec>,
    /// Every configuration's result, in plan order.
    pub results: Vec<RunResult>,
    /// Run folders copied into `out` from the other folders.
    pub copied: usize,
    /// The shards' records, from every folder.
    pub shards: Vec<ShardRecord>,
    /// OpenBLAS kernel families the runs used, with how many runs each.
    pub kernels: BTreeMap<String, usize>,
}

fn read_plan(dir: &Path) -> Result<PlanRecord> {
    let path = dir.join(PLAN_FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} has no {PLAN_FILE}: it is not a sweep folder, or none of its shards has started \
             (run `shallow sweep ... --shard K/N --out {}` first)",
            dir.display(),
            dir.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a shallow plan: delete it, or merge another folder",
            path.display()
        )
    })
}

/// A run folder's finished result, or why it has none.
enum Found {
    Done(Box<RunResult>, String),
    Unfinished,
}

fn look(dir: &Path, plan: &crate::train::RunConfig) -> Result<Found> {
    let result = dir.join("result.json");
    let Ok(bytes) = std::fs::read(&result) else {
        return Ok(Found::Unfinished);
    };
    let r: RunResult = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a shallow result: delete its folder and run its shard again",
            result.display()
        )
    })?;
    if r.status == Status::Interrupted {
        return Ok(Found::Unfinished);
    }
    let cfg = dir.join("config.json");
    let saved: SavedConfig = serde_json::from_slice(
        &std::fs::read(&cfg).with_context(|| format!("{} is missing", cfg.display()))?,
    )
    .with_context(|| format!("{} is not a shallow run configuration", cfg.display()))?;
    if saved.config != *plan {
        let one = |c: &crate::train::RunConfig| PlanRecord {
            max_group: 0,
            runs: vec![c.clone()],
            halving: None,
        };
        let diffs = plan_differences(&one(&saved.config), &one(plan));
        bail!(
            "{} was trained with other settings than the plan's, so merging would mix two experiments. \
             It differs in:\n  {}\nDelete that folder and run its shard again",
            dir.display(),
            diffs.join("\n  ").replace("in the folder", "in the run").replace(" now", " in the plan")
        );
    }
    Ok(Found::Done(Box::new(r), saved.blas_kernel))
}

/// Copies the folder `from` to `to` through a temporary sibling, replacing
/// whatever `to` held (an unfinished run) only once the copy is complete.
fn copy_run(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.merging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    if to.exists() {
        let old = parent.join(format!(".{name}.replaced-{}", std::process::id()));
        std::fs::rename(to, &old)?;
        std::fs::rename(&tmp, to)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&tmp, to)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// Merges the sweep folders `dirs` into `out` (which may be one of them):
/// every folder must hold the same plan; every configuration of it must have
/// a finished run folder in one of them, trained with the plan's settings.
/// Writes the results tables, sweep.json and run.json (with the shards'
/// records) into `out`; the caller draws summary.png and the report. Nothing
/// is written when a check fails.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged> {
    if dirs.is_empty() {
        bail!("sweep merge: name the sweep folder(s), e.g. `shallow sweep merge out/sweep`");
    }
    let plan = &one_plan(dirs, out)?;
    // Where each configuration's finished run is: `out` first, then the folders in order.
    let mut search: Vec<PathBuf> = vec![out.to_path_buf()];
    search.extend(dirs.iter().filter(|d| !same_dir(d, out)).cloned());
    let mut found: Vec<Option<(usize, RunResult, String)>> = Vec::new();
    for c in &plan.runs {
        let mut hit = None;
        for (k, d) in search.iter().enumerate() {
            if let Found::Done(r, kernel) = look(&d.join(&c.name), c)? {
                hit = Some((k, *r, kernel));
                break;
            }
        }
        found.push(hit);
    }
    let mut shards: Vec<ShardRecord> = Vec::new();
    for d in &search {
        for r in ShardRecord::read_all(d) {
            if !shards.iter().any(|s| s.shard == r.shard) {
                shards.push(r);
            }
        }
    }
    shards.sort_by_key(|r| (r.shard.count, r.shard.index));
    let missing: Vec<usize> = (0..plan.runs.len())
        .filter(|&i| found[i].is_none())
        .collect();
    if !missing.is_empty() {
        bail!("{}", missing_message(plan, &missing, &shards, dirs));
    }
    create_dir(out)?;
    let mut copied = 0;
    let mut kernels: BTreeMap<String, usize> = BTreeMap::new();
    let mut results = Vec::with_capacity(plan.runs.len());
    for (c, f) in plan.runs.iter().zip(found) {
        let (k, r, kernel) = f.expect("checked above");
        if k > 0 {
            copy_run(&search[k].join(&c.name), &out.join(&c.name))?;
            copied += 1;
        }
        *kernels.entry(kernel).or_default() += 1;
        results.push(r);
    }
    let spec: Option<SweepSpec> = search
        .iter()
        .find_map(|d| serde_json::from_slice(&std::fs::read(d.join("sweep.json")).ok()?).ok());
    if !out.join(PLAN_FILE).exists() {
        write_json(&out.join(PLAN_FILE), plan)?;
    }
    let columns = match &spec {
        Some(s) => {
            write_json(&out.join("sweep.json"), s)?;
            results::axis_columns(s)
        }
        None => Default::default(),
    };
    for r in &shards {
        r.write(out)?;
    }
    results::write_tables(out, &results, &columns)?;
    write_run_info(out, &shards)?;
    Ok(Merged {
        out: out.to_path_buf(),
        spec,
        results,
        copied,
        shards,
        kernels,
    })
}

/// The one plan the folders `dirs` hold (and `out`, when it holds one),
/// refused with the differences when two differ: merging would mix two
/// experiments.
fn one_plan(dirs: &[PathBuf], out: &Path) -> Result<PlanRecord> {
    let plans: Vec<PlanRecord> = dirs.iter().map(|d| read_plan(d)).collect::<Result<_>>()?;
    let plan = plans[0].clone();
    for (d, p) in dirs.iter().zip(&plans).skip(1) {
        let diffs = plan_differences(&plan, p);
        if !diffs.is_empty() {
            bail!(
                "sweep merge: {} and {} hold different plans, so merging them would mix two experiments. \
                 They differ in:\n  {}\nMerge the shards of one sweep only",
                dirs[0].display(),
                d.display(),
                diffs
                    .join("\n  ")
                    .replace("in the folder", &format!("in {}", dirs[0].display()))
                    .replace(" now", &format!(" in {}", d.display()))
            );
        }
    }
    // `out` must not hold another plan either.
    let out_in_dirs = dirs.iter().any(|d| same_dir(d, out));
    if !out_in_dirs && out.join(PLAN_FILE).exists() {
        let diffs = plan_differences(&read_plan(out)?, &plan);
        if !diffs.is_empty() {
            bail!(
                "sweep merge: --out {} holds another sweep's plan. It differs in:\n  {}\nChoose another --out",
                out.display(),
                diffs.join("\n  ")
            );
        }
    }
    Ok(plan)
}

/// run.json of a merged sweep: this command, with the latest shards' cores
/// and their longest time. A sweep trained whole (no shard records) keeps
/// its own record: its command line and wall time are the ones that made the runs.
fn write_run_info(out: &Path, shards: &[ShardRecord]) -> Result<()> {
    let latest = shards.iter().map(|r| r.shard.count).max();
    let used: Vec<&ShardRecord> = shards
        .iter()
        .filter(|r| Some(r.shard.count) == latest)
        .collect();
    let mut info = RunInfo::now(
        "sweep",
        used.iter().map(|r| r.cores).sum::<usize>().max(1),
        used.iter().map(|r| r.wall_s).fold(0.0, f64::max),
    );
    info.shards = used.into_iter().cloned().collect();
    let own_record = info.shards.is_empty()
        && std::fs::read(out.join(results::RUN_INFO))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunInfo>(&b).ok())
            .is_some();
    if !own_record {
        write_json(&out.join(results::RUN_INFO), &info)?;
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Why a merge is refused for want of runs: which configurations, which
/// shards train them, and what their records say.
fn missing_message(
    plan: &PlanRecord,
    missing: &[usize],
    records: &[ShardRecord],
    dirs: &[PathBuf],
) -> String {
    let names: Vec<&str> = missing
        .iter()
        .map(|&i| plan.runs[i].name.as_str())
        .collect();
    let shown = if names.len() > 6 {
        format!("{}, ... ({} more)", names[..6].join(", "), names.len() - 6)
    } else {
        names.join(", ")
    };
    let where_ = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut msg = format!(
        "sweep merge: {} of {} configurations have no finished run in {where_}: {shown}.",
        missing.len(),
        plan.runs.len()
    );
    // The shard count the records use (the largest, if several).
    if let Some(count) = records.iter().map(|r| r.shard.count).max() {
        let mut by_shard: BTreeMap<usize, usize> = BTreeMap::new();
        for index in 0..count {
            let mine = shard::members(&plan.runs, plan.max_group, Shard { index, count });
            let n = missing.iter().filter(|&&i| mine[i]).count();
            if n > 0 {
                by_shard.insert(index, n);
            }
        }
        for (index, n) in by_shard {
            let rec = records.iter().find(|r| r.shard == Shard { index, count });
            let state = match rec {
                None => "left no record: it has not run, or is still running".to_string(),
                Some(r) if !r.finished => format!("was interrupted on {} ({})", r.host, r.date),
                Some(r) => format!(
                    "finished on {} ({}), but its runs are not in these folders",
                    r.host, r.date
                ),
            };
            msg.push_str(&format!("\n  shard {index}/{count} ({n} missing) {state}"));
        }
        msg.push_str("\nRun those shards again (they resume where they stopped), then merge again");
    } else {
        msg.push_str("\nNo shard has recorded its end yet: wait for them, or run the missing shards, then merge again");
    }
    msg
}
