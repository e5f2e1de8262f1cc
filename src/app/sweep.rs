//! `shallow sweep`: grids and random draws over any training setting, in
//! lockstep groups, with a live dashboard, a summary picture and a report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::args::{AxesArgs, CommonArgs, PruneArgs, SettingsArgs, SlurmArgs};
use super::common::{interrupted, print_json, runner_options, Finish};
use crate::folder::FolderKind;
use crate::sweep::plan::SweepSettings;
use crate::sweep::shard::{Shard, ShardRecord};
use crate::sweep::{configs_here, results, run_configs_shard, SweepSpec};
use crate::train::{Control, TrainSettings};
use crate::ui::{Dashboard, DisplayMode};

/// Flags of `shallow sweep`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    /// `shallow sweep merge`: gather a sharded sweep.
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// TOML file with the sweep's settings and axes (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The axes: --grid, --random, --draws and the lambda shorthands.
    #[command(flatten)]
    pub axes: AxesArgs,
    /// Every `shallow train` setting, fixed for the whole sweep.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Successive halving or Hyperband over the configurations.
    #[command(flatten)]
    pub prune: PruneArgs,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Most configurations trained in lockstep per group. It decides the groups,
    /// and so the GEMM shapes: runs give the same numbers bit for bit for any
    /// --jobs and --threads, but a different --max-group changes their last bits.
    #[arg(long, default_value_t = crate::sweep::DEFAULT_MAX_GROUP)]
    pub max_group: usize,
    /// Most configurations the sweep may have: a larger plan is refused,
    /// with its count, before anything starts.
    #[arg(long, value_name = "N", default_value_t = crate::sweep::plan::DEFAULT_MAX_RUNS)]
    pub max_runs: usize,
    /// Continue an interrupted sweep in the same --out (refused when the plan differs).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds another sweep, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Train only shard K of N (counting from 0) of the plan's lockstep
    /// groups, into the usual run folders; `shallow sweep merge` gathers the
    /// shards. A shard joins a folder holding the same plan and resumes its
    /// own runs there; it refuses another plan.
    #[arg(long, value_name = "K/N", conflicts_with_all = ["force", "slurm"])]
    pub shard: Option<String>,
    /// Slurm: write (and submit) job scripts instead of training here.
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Subcommands of `shallow sweep`.
#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Gather the run folders of a sharded sweep (one shared folder, or one
    /// per shard) and write its tables, summary.png and report; refuses plans
    /// that differ and names the configurations still missing.
    Merge(MergeArgs),
}

/// Flags of `shallow sweep merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// The sweep folder(s) the shards wrote (their --out).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the merged sweep goes [the first DIR].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// The flags of one layer (axes and fixed settings) as sweep settings.
pub fn flag_settings(axes: &AxesArgs, settings: &SettingsArgs) -> Result<SweepSettings> {
    let (axes, fixed) = (axes.settings()?, settings.settings());
    SweepSettings::refuse_fixed_axes(&axes, &fixed, "on the command line")?;
    axes.over(fixed)
}

/// Builds a sweep from defaults, then the TOML file, then the flags.
pub fn sweep_spec(a: &SweepArgs) -> Result<SweepSpec> {
    let file = match &a.config {
        Some(p) => SweepSettings::from_toml_file(p)?,
        None => SweepSettings::default(),
    };
    let data = crate::data::probe(&a.common.data.source())?;
    flag_settings(&a.axes, &a.settings)?
        .over(file)?
        .spec(TrainSettings::sweep_default().for_data(data))
}

/// A dashboard label per configuration: its axis values, e.g. `lambda 1.00e-3`
/// or `eta_max 0.1 hidden 100`.
pub fn labels(spec: &SweepSpec) -> Vec<String> {
    spec.points()
        .iter()
        .map(|p| {
            if p.is_empty() {
                return "run".to_string();
            }
            p.iter()
                .map(|(axis, v)| match (axis, v) {
                    (crate::train::Axis::Lambda, crate::train::Value::Num(l)) => {
                        format!("lambda {l:.3e}")
                    }
                    _ => format!("{} {}", axis.name(), v.label()),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Runs the sweep of `a` (or its shard, or writes its Slurm jobs, or merges
/// it), writes its tables, summary picture and report, and prints the table.
pub fn run(a: &SweepArgs, control: &Control) -> Result<Finish> {
    if let Some(SweepCommand::Merge(m)) = &a.command {
        return merge(m);
    }
    let mut spec = sweep_spec(a)?;
    let ladder = a.prune.flags()?.fit(&mut spec)?;
    spec.check_size(a.max_runs)?;
    let configs = spec.configs()?;
    for c in &configs {
        c.validate(c.split.train_len())?;
    }
    if let Some(l) = &ladder {
        crate::sweep::halving::check(&configs, l)?;
    }
    super::common::say_fast_choice();
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let threads = super::common::threads(a.common.threads)?;
    if let Some(n) = a.slurm.slurm {
        let _lock = super::common::claim_out(&a.common, FolderKind::Sweep, a.force)?;
        return write_slurm(a, &spec, &configs, ladder.as_ref(), n);
    }
    crate::sweep::runner::check_memory(&configs, a.max_group, a.jobs.unwrap_or(threads))?;
    let label = shard.map(|s| s.label());
    let _lock = crate::folder::claim(
        &a.common.out,
        &crate::folder::Claim {
            shard: label.as_deref(),
            ..crate::folder::Claim::new(FolderKind::Sweep, a.force)
        },
    )?;
    let data = crate::data::load(&a.common.data.source())?;
    let mut opts = runner_options(
        &a.common,
        a.jobs,
        a.max_group,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    opts.shard = shard;
    let names = labels(&spec);
    let label = |c: &crate::train::RunConfig| {
        configs
            .iter()
            .position(|x| x.name == c.name)
            .map_or_else(|| c.name.clone(), |i| names[i].clone())
    };
    // A pruned search's shard trains a part of one rung: every line is shown.
    let mine = if ladder.is_some() {
        configs.clone()
    } else {
        configs_here(&configs, &opts)
    };
    let dashboard = Dashboard::new(&mine, DisplayMode::detect(a.common.quiet), label);
    if let Some(s) = shard.filter(|_| ladder.is_none()) {
        dashboard.println(&format!(
            "shard {}: {} of {} configurations",
            s.label(),
            mine.len(),
            configs.len()
        ));
    }
    let t0 = std::time::Instant::now();
    let results = if let Some(l) = &ladder {
        for line in l.describe_lines() {
            dashboard.println(&line);
        }
        opts.ladder = Some(l.clone());
        crate::sweep::halving::run_halving(
            &configs,
            Some(&data),
            &opts,
            control,
            &dashboard,
            if shard.is_some() {
                crate::sweep::halving::HalvingMode::Shard
            } else {
                crate::sweep::halving::HalvingMode::All
            },
        )?
        .into_iter()
        .map(Some)
        .collect()
    } else {
        run_configs_shard(&configs, &data, &opts, control, &dashboard)?
    };
    let wall_s = t0.elapsed().as_secs_f64();
    // Written once the plan was accepted (a refused --resume leaves the folder as it was).
    crate::util::write_json(&a.common.out.join("sweep.json"), &spec)?;
    if let (Some(s), Some(_)) = (shard, &ladder) {
        return finish_pruned_shard(a, s, &results, wall_s);
    }
    if let Some(s) = shard {
        return finish_shard(a, s, &mine, configs.len(), &results, opts.threads, wall_s);
    }
    let results: Vec<crate::train::output::RunResult> = results
        .into_iter()
        .map(|r| r.expect("every configuration ran"))
        .collect();
    finish_sweep(a, &spec, &results, ladder.is_some(), opts.threads, wall_s)
}

/// A sweep's end on one machine: its tables (with the budget each reached,
/// when pruned) and, once finished, run.json and the report; then the table.
fn finish_sweep(
    a: &SweepArgs,
    spec: &SweepSpec,
    results: &[crate::train::output::RunResult],
    pruned: bool,
    threads: usize,
    wall_s: f64,
) -> Result<Finish> {
    let mut columns = results::axis_columns(spec);
    let record = crate::sweep::halving::RungRecord::read(&a.common.out)?.filter(|_| pruned);
    if let Some(r) = &record {
        columns.push(r.budget_column());
    }
    results::write_tables(&a.common.out, results, &columns)?;
    let done = !interrupted(results);
    if done {
        results::RunInfo::record(&a.common.out, "sweep", threads, wall_s, a.resume)?;
        crate::report::build::build(&a.common.out)?;
    }
    if a.common.json {
        print_results_json(spec, results, record.as_ref(), wall_s)?;
    } else if !a.common.quiet {
        crate::out!("{}", results::text_table(results, &columns))?;
        crate::outln!(
            "{} runs in {wall_s:.2} s; tables{} in {}",
            results.len(),
            if done {
                ", summary.png and report.html"
            } else {
                ""
            },
            a.common.out.display()
        )?;
    }
    Ok(if done {
        Finish::Done
    } else {
        Finish::Interrupted
    })
}

/// A pruned search's shard's end: what it trained of the current rung, and
/// that `sweep merge` decides the rung once every shard is done.
fn finish_pruned_shard(
    a: &SweepArgs,
    s: Shard,
    results: &[Option<crate::train::output::RunResult>],
    wall_s: f64,
) -> Result<Finish> {
    use crate::train::Status;
    let trained: Vec<&crate::train::output::RunResult> = results
        .iter()
        .flatten()
        .filter(|r| {
            r.steps > 0 && matches!(r.status, Status::Paused | Status::Done | Status::Diverged)
        })
        .collect();
    let stopped = results
        .iter()
        .flatten()
        .any(|r| r.status == Status::Interrupted && r.steps > 0);
    if a.common.json {
        print_json(
            &serde_json::json!({"shard": s, "trained": trained.len(), "finished": !stopped, "wall_s": wall_s}),
        )?;
    } else if !a.common.quiet {
        crate::outln!(
            "shard {}: {} configuration{} brought to the current rung in {wall_s:.2} s; once every shard has run, \
             `shallow sweep merge {}` decides the rung",
            s.label(),
            trained.len(),
            if trained.len() == 1 { "" } else { "s" },
            a.common.out.display()
        )?;
    }
    Ok(if stopped {
        Finish::Interrupted
    } else {
        Finish::Done
    })
}

/// A shard's end: its record in the folder, then what it ran (as JSON with
/// `--json`) and, once finished, how to merge the shards.
fn finish_shard(
    a: &SweepArgs,
    s: Shard,
    mine: &[crate::train::RunConfig],
    of: usize,
    results: &[Option<crate::train::output::RunResult>],
    threads: usize,
    wall_s: f64,
) -> Result<Finish> {
    let finished = results
        .iter()
        .flatten()
        .all(|r| r.status != crate::train::Status::Interrupted);
    ShardRecord::now(
        s,
        mine.iter().map(|c| c.name.clone()).collect(),
        finished,
        threads,
        wall_s,
    )
    .write(&a.common.out)?;
    if a.common.json {
        let runs: Vec<_> = results.iter().flatten().collect();
        print_json(
            &serde_json::json!({"shard": s, "runs": runs, "finished": finished, "wall_s": wall_s}),
        )?;
    } else if !a.common.quiet {
        crate::outln!(
            "shard {}: {} of {} configurations in {wall_s:.2} s, in {}{}",
            s.label(),
            mine.len(),
            of,
            a.common.out.display(),
            if finished {
                format!(
                    "\nwhen every shard is done: shallow sweep merge {}",
                    a.common.out.display()
                )
            } else {
                String::new()
            }
        )?;
    }
    Ok(if finished {
        Finish::Done
    } else {
        Finish::Interrupted
    })
}

/// The sweep's results as one JSON document: each run with its axis values, the best, the wall time.
fn print_results_json(
    spec: &SweepSpec,
    results: &[crate::train::output::RunResult],
    rungs: Option<&crate::sweep::halving::RungRecord>,
    wall_s: f64,
) -> Result<()> {
    let runs: Vec<serde_json::Value> = results
        .iter()
        .zip(spec.points())
        .map(|(r, p)| {
            let axes: serde_json::Map<String, serde_json::Value> = p
                .iter()
                .map(|(axis, v)| (axis.name().to_string(), serde_json::json!(v)))
                .collect();
            serde_json::json!({"name": r.name, "axes": axes, "lambda": r.lambda, "train_acc": r.train_acc, "val_acc": r.val_acc, "test_acc": r.test_acc, "steps": r.steps, "wall_s": r.wall_s, "status": r.status})
        })
        .collect();
    let best = results::best(results);
    let mut out = serde_json::json!({"runs": runs, "best": best, "wall_s": wall_s});
    if let Some(r) = rungs {
        out["pruning"] = serde_json::to_value(r)?;
    }
    print_json(&out)
}

/// `sweep merge` of a pruned search's folder: decides the rung its shards
/// finished; after the last, writes the tables and report and prints the table.
fn merge_pruned(m: &MergeArgs) -> Result<Finish> {
    use crate::sweep::halving::{run_halving, HalvingMode, RungRecord};
    use crate::train::Status;
    let dir = &m.dirs[0];
    if m.dirs.len() > 1 || m.out.as_ref().is_some_and(|o| o != dir) {
        anyhow::bail!(
            "{} holds a pruned search, whose shards share one folder: give only that folder, without --out",
            dir.display()
        );
    }
    let _lock = crate::folder::claim(dir, &crate::folder::Claim::new(FolderKind::Sweep, false))?;
    let plan_path = dir.join(crate::sweep::runner::PLAN_FILE);
    let plan: crate::sweep::runner::PlanRecord =
        serde_json::from_slice(&std::fs::read(&plan_path)?)
            .with_context(|| format!("{} is not a shallow plan", plan_path.display()))?;
    let spec: SweepSpec = serde_json::from_slice(&std::fs::read(dir.join("sweep.json"))?)?;
    let opts = crate::sweep::RunnerOptions {
        jobs: 1,
        threads: 1,
        max_group: plan.max_group,
        out: dir.clone(),
        resume: true,
        draw: Some(crate::report::run_pictures),
        ladder: plan.halving.clone(),
        ..Default::default()
    };
    let dashboard = Dashboard::new(&plan.runs, DisplayMode::Quiet, |c| c.name.clone());
    let t0 = std::time::Instant::now();
    let results = run_halving(
        &plan.runs,
        None,
        &opts,
        &Control::new(),
        &dashboard,
        HalvingMode::Decide,
    )?;
    let record = RungRecord::read(dir)?;
    let finished = results
        .iter()
        .all(|r| matches!(r.status, Status::Done | Status::Pruned | Status::Diverged));
    if !finished {
        let decided = record.as_ref().map_or(0, |r| r.rungs.len());
        if !m.quiet {
            crate::outln!(
                "{decided} rung{} decided in {}; the next rung's shards train the survivors",
                if decided == 1 { "" } else { "s" },
                dir.display()
            )?;
        }
        return Ok(Finish::Done);
    }
    let mut columns = results::axis_columns(&spec);
    if let Some(r) = &record {
        columns.push(r.budget_column());
    }
    results::write_tables(dir, &results, &columns)?;
    let wall_s = t0.elapsed().as_secs_f64();
    results::RunInfo::record(dir, "sweep", 1, wall_s, true)?;
    crate::report::build::build(dir)?;
    if m.json {
        print_results_json(&spec, &results, record.as_ref(), wall_s)?;
    } else if !m.quiet {
        crate::out!("{}", results::text_table(&results, &columns))?;
        crate::outln!(
            "every rung decided; tables, summary.png and report.html in {}",
            dir.display()
        )?;
    }
    Ok(Finish::Done)
}

/// `shallow sweep merge`: gathers the shards and prints the table.
fn merge(m: &MergeArgs) -> Result<Finish> {
    if m.dirs[0].join(crate::sweep::ladder::RUNGS_FILE).exists() {
        return merge_pruned(m);
    }
    let out = m.out.clone().unwrap_or_else(|| m.dirs[0].clone());
    let _lock = crate::folder::claim(&out, &crate::folder::Claim::new(FolderKind::Sweep, false))?;
    let merged = crate::sweep::merge::merge(&m.dirs, &out)?;
    if merged.spec.is_some() {
        crate::report::build::build(&merged.out)?;
    }
    if merged.kernels.len() > 1 {
        let used: Vec<String> = merged
            .kernels
            .iter()
            .map(|(k, n)| format!("{k} on {n} run{}", if *n == 1 { "" } else { "s" }))
            .collect();
        eprintln!(
            "warning: the shards ran different OpenBLAS kernels ({}): each run is reproducible on its kernel, \
             but together they are not bit for bit what one machine gives. Set OPENBLAS_CORETYPE in the job \
             scripts (one every node has, e.g. Haswell) to make them agree",
            used.join(", ")
        );
    }
    let wall_s = merged.shards.iter().map(|r| r.wall_s).fold(0.0, f64::max);
    if m.json {
        match &merged.spec {
            Some(spec) => print_results_json(spec, &merged.results, None, wall_s)?,
            None => print_json(&serde_json::json!({"runs": merged.results}))?,
        }
    } else if !m.quiet {
        let columns = merged
            .spec
            .as_ref()
            .map(results::axis_columns)
            .unwrap_or_default();
        crate::out!("{}", results::text_table(&merged.results, &columns))?;
        crate::outln!(
            "merged {} runs from {} shard{} ({} folder{} copied); tables{} in {}",
            merged.results.len(),
            merged.shards.len(),
            if merged.shards.len() == 1 { "" } else { "s" },
            merged.copied,
            if merged.copied == 1 { "" } else { "s" },
            if merged.spec.is_some() {
                ", summary.png and report.html"
            } else {
                ""
            },
            merged.out.display()
        )?;
    }
    Ok(Finish::Done)
}

/// `--slurm N`: checks the plan against --out (recording it there), writes the
/// array and merge scripts into --out/slurm, and submits them with --submit.
fn write_slurm(
    a: &SweepArgs,
    spec: &SweepSpec,
    configs: &[crate::train::RunConfig],
    ladder: Option<&crate::sweep::ladder::Ladder>,
    n: usize,
) -> Result<Finish> {
    use crate::sweep::slurm;
    let res = a.slurm.resources()?;
    if n == 0 {
        anyhow::bail!("--slurm 0: give the number of array tasks (shards), at least 1");
    }
    let groups = crate::sweep::shard::plan_groups(configs, a.max_group).len();
    let tasks = n.min(groups);
    if tasks < n {
        eprintln!(
            "--slurm {n}: the plan has {groups} lockstep group{} and a shard takes whole groups, so {tasks} array task{} \
             (a lower --max-group makes more groups, and changes the last bits of the numbers)",
            if groups == 1 { "" } else { "s" },
            if tasks == 1 { "" } else { "s" }
        );
    }
    let (out, data_dir, cwd) = slurm_paths(&a.common)?;
    let mut opts = runner_options(
        &a.common,
        a.jobs,
        a.max_group,
        (a.resume, a.force),
        data_dir.display().to_string(),
    )?;
    opts.out = out.clone();
    opts.ladder = ladder.cloned();
    // The plan goes into the folder now: a shard that computes another refuses to run.
    crate::sweep::runner::guard_plan(configs, &opts)?;
    crate::util::write_json(&out.join("sweep.json"), spec)?;
    let rest = slurm::without_flags(
        &slurm::own_args("sweep"),
        &slurm::SLURM_VALUED,
        &slurm::SLURM_BARE,
    );
    let mut args = vec!["sweep".to_string()];
    args.extend(rest);
    args.extend(fixed_paths(&out, &data_dir, &a.common.data.source()));
    if let Some(l) = ladder {
        let jobs = rung_jobs(l, &args, &out, n, res.cpus_per_task);
        return submit_or_tell(&out, &jobs, &res, &cwd, a.slurm.submit, "shallow-merge");
    }
    let jobs = vec![
        shard_array("sweep", tasks, None, res.cpus_per_task, &args),
        merge_job("merge", 0, &out),
    ];
    submit_or_tell(&out, &jobs, &res, &cwd, a.slurm.submit, "shallow-merge")
}

/// A pruned search's Slurm chain: per stage, an array of `n` shards that
/// bring the live configurations to their next rung (each task runs `args`
/// with its shard), then `sweep merge` of `out`, which decides the rung (the
/// last one writes the tables and report); each job after the one before
/// succeeded.
pub fn rung_jobs(
    ladder: &crate::sweep::ladder::Ladder,
    args: &[String],
    out: &std::path::Path,
    n: usize,
    cpus: usize,
) -> Vec<crate::sweep::slurm::Job> {
    let mut jobs = Vec::new();
    for stage in 1..=ladder.stages() {
        let after = jobs.len().checked_sub(1);
        jobs.push(shard_array(&format!("rung{stage}"), n, after, cpus, args));
        let name = if stage == ladder.stages() {
            "merge".to_string()
        } else {
            format!("decide{stage}")
        };
        jobs.push(merge_job(&name, jobs.len() - 1, out));
    }
    jobs
}

/// An array job `name` of `tasks` shards, each running `args` with
/// `--shard $SLURM_ARRAY_TASK_ID/tasks` on its allocation's cores.
pub fn shard_array(
    name: &str,
    tasks: usize,
    after: Option<usize>,
    cpus: usize,
    args: &[String],
) -> crate::sweep::slurm::Job {
    crate::sweep::slurm::Job {
        file: format!("{name}.sbatch"),
        name: format!("shallow-{name}"),
        tasks: Some(tasks),
        after,
        cpus,
        args: args.to_vec(),
        raw: format!(
            "--threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --shard \"$SLURM_ARRAY_TASK_ID/{tasks}\""
        ),
    }
}

/// The one-task job `name` that runs `sweep merge out` after job `after`.
fn merge_job(name: &str, after: usize, out: &std::path::Path) -> crate::sweep::slurm::Job {
    crate::sweep::slurm::Job {
        file: format!("{name}.sbatch"),
        name: format!("shallow-{name}"),
        tasks: None,
        after: Some(after),
        cpus: 1,
        args: vec![
            "sweep".into(),
            "merge".into(),
            out.display().to_string(),
            "--quiet".into(),
        ],
        raw: String::new(),
    }
}

/// The absolute --out (created), the data folder the shards will read
/// (absolute; refused when there is none, since every shard would fetch it),
/// and the folder the command runs in.
pub fn slurm_paths(common: &CommonArgs) -> Result<(PathBuf, PathBuf, PathBuf)> {
    crate::util::create_dir(&common.out)?;
    let out = common.out.canonicalize()?;
    let Some(data) = crate::data::locate(&common.data.source())? else {
        anyhow::bail!(
            "--slurm: no data found (--data, $CIFAR10_DIR, ./data/cifar-10-batches-bin): \
             fetch it once where every node can read it (`shallow data fetch --dest DIR`), then give --data DIR"
        );
    };
    let data = data.canonicalize().unwrap_or(data);
    let cwd = std::env::current_dir()?;
    Ok((out, data, cwd))
}

/// `--data DATA --out OUT --quiet`: what every job passes whatever was typed.
pub fn fixed_paths(
    out: &std::path::Path,
    data: &std::path::Path,
    source: &crate::data::Source,
) -> Vec<String> {
    let mut args = vec!["--data".into(), data.display().to_string()];
    if let Some(d) = source.dataset {
        args.extend(["--dataset".into(), d.flag().into()]);
    }
    if let Some(l) = source.labels {
        args.extend(["--labels".into(), format!("{l:?}").to_lowercase()]);
    }
    args.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
    args
}

/// Writes the jobs' scripts, submits them when asked, and says what to do next.
pub fn submit_or_tell(
    out: &std::path::Path,
    jobs: &[crate::sweep::slurm::Job],
    res: &crate::sweep::slurm::Resources,
    cwd: &std::path::Path,
    submit: bool,
    what: &str,
) -> Result<Finish> {
    use crate::sweep::slurm;
    let dir = slurm::write(out, jobs, res, &slurm::exe()?, cwd)?;
    let ids = if submit {
        let ids = slurm::submit(&dir, jobs)?;
        crate::util::write_json(
            &dir.join("jobs.json"),
            &jobs
                .iter()
                .zip(&ids)
                .map(|(j, id)| serde_json::json!({"name": j.name, "job": id, "file": j.file}))
                .collect::<Vec<_>>(),
        )?;
        Some(ids)
    } else {
        None
    };
    let results = format!(
        "results: {} once the last job ({}) has run",
        out.join("report.html").display(),
        what
    );
    crate::out!("{}", slurm::summary(&dir, jobs, ids.as_deref(), &results))?;
    Ok(Finish::Done)
}
