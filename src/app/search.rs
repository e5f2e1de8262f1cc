//! `shallow search`, the coarse-to-fine search of Assignment 2 on any scale
//! axis (lambda by default): a coarse random sweep over a wide log range, a
//! fine one centred on the best value so far, then the `--top K` values of both
//! stages trained on more data, reporting test accuracy.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use clap::Args;

use super::args::{CommonArgs, SettingsArgs, SlurmArgs};
use super::common::{print_summary, runner_options, Finish};
use crate::data::{Cifar10, SplitKind};
use crate::sweep::plan::{random_values, AxisValues, SweepSettings, SweepSpec};
use crate::sweep::results::{axis_columns, ranking, write_tables, SearchSummary};
use crate::sweep::shard::{Shard, ShardRecord};
use crate::sweep::{run_configs, run_configs_shard, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::{Axis, Control, Status, TrainSettings, Value};
use crate::ui::{Dashboard, DisplayMode};
use crate::util::{write_atomic, write_json};

/// Settings of a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// The scale axis searched (lambda, eta, eta_min or eta_max).
    pub axis: Axis,
    /// The coarse range: (lo, hi, draws), log-uniform.
    pub coarse_range: (f64, f64, usize),
    /// Fixed settings of every stage (the coarse stage's cycles).
    pub base: TrainSettings,
    /// Values of the fine sweep.
    pub fine_n: usize,
    /// Cycles of the fine sweep.
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best value so far, in decades.
    pub fine_decades: f64,
    /// Values trained in the final stage: the best of the coarse and fine
    /// stages together, by validation accuracy.
    pub top: usize,
    /// Cycles of the final runs.
    pub final_cycles: usize,
    /// Validation images held out in the final runs (the rest of the five
    /// training batches train).
    pub final_n_val: usize,
}

impl Default for SearchOptions {
    /// Assignment 2's search: 8 lambdas in 1e-5..1e-1 for 2 cycles of n_s 900,
    /// 8 in the half-decade around the best for 3 cycles, then the best 3 on
    /// 49,000 images for 3 cycles.
    fn default() -> Self {
        SearchOptions {
            axis: Axis::Lambda,
            coarse_range: (1e-5, 1e-1, 8),
            base: TrainSettings {
                cycles: 2,
                ns: 900,
                ..TrainSettings::sweep_default()
            },
            fine_n: 8,
            fine_cycles: 3,
            fine_decades: 0.5,
            top: 3,
            final_cycles: 3,
            final_n_val: 1000,
        }
    }
}

impl SearchOptions {
    /// A stage's sweep over `base`: the axis's values as a grid, or as random
    /// draws (`random`), which only changes how the plan records them.
    fn stage(
        &self,
        prefix: &str,
        base: TrainSettings,
        axis_values: AxisValues,
        random: bool,
    ) -> SweepSpec {
        let (grid, random) = if random {
            (vec![], vec![axis_values])
        } else {
            (vec![axis_values], vec![])
        };
        SweepSpec {
            prefix: prefix.into(),
            base,
            grid,
            random,
        }
    }

    fn draw(&self, lo: f64, hi: f64, n: usize, seed: u64) -> Result<AxisValues> {
        let range = format!("{lo:e}:{hi:e}:log");
        Ok(random_values(&[(self.axis, range)], n, seed)?.remove(0))
    }

    /// The coarse stage's sweep.
    pub fn coarse(&self) -> Result<SweepSpec> {
        let (lo, hi, n) = self.coarse_range;
        let values = self.draw(lo, hi, n, self.base.seed)?;
        Ok(self.stage("coarse", self.base.clone(), values, true))
    }
}

/// The axis value of each result, in plan order.
fn values_of(spec: &SweepSpec) -> Vec<f64> {
    spec.points()
        .iter()
        .map(|p| {
            p.last()
                .and_then(|(_, v)| v.as_number())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// The stages of a search, in the order they run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Random values over the whole range.
    Coarse,
    /// Random values around the best coarse value.
    Fine,
    /// The best values on more data.
    Final,
}

impl Stage {
    /// The stage's name, which is also its folder.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Coarse => "coarse",
            Stage::Fine => "fine",
            Stage::Final => "final",
        }
    }
}

/// How a search (or one stage's shard of it) ended.
#[derive(Debug)]
pub enum SearchEnd {
    /// Every stage ran: the summary.
    Done(Box<SearchSummary>),
    /// Stopped by Ctrl-C or SIGTERM; checkpoints kept for `resume`.
    Interrupted,
    /// One shard of one stage ran (`--stage S --shard K/N`).
    Shard {
        /// The stage.
        stage: Stage,
        /// The shard.
        shard: Shard,
        /// Its configurations / the stage's.
        trained: usize,
        /// The stage's configurations.
        of: usize,
        /// Whether all of its runs finished.
        finished: bool,
    },
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
    Ok(
        match search_stage(data, opts, runner, control, mode, None)? {
            SearchEnd::Done(s) => Some(*s),
            _ => None,
        },
    )
}

/// The finished results of `configs` in `out`, in order, for a later stage's
/// shard that needs them; refused, naming what is missing, when any is not
/// finished (it would be trained there, by every shard at once).
fn finished_stage(
    stage: Stage,
    later: Stage,
    configs: &[crate::train::RunConfig],
    runner: &RunnerOptions,
) -> Result<Vec<RunResult>> {
    // Checks (or records) the stage's plan, as a resume does.
    crate::util::create_dir(&runner.out)?;
    crate::sweep::runner::guard_plan(
        configs,
        &RunnerOptions {
            resume: true,
            force: false,
            shard: None,
            ..runner.clone()
        },
    )?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for c in configs {
        let path = runner.out.join(&c.name).join("result.json");
        match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunResult>(&b).ok())
        {
            Some(r) if r.status != Status::Interrupted => results.push(r),
            _ => missing.push(c.name.clone()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "--stage {}: the {} stage is not finished in {}: {} of {} runs have no result ({}). \
             The {} stage's values depend on it: run every shard of the {} stage first (--stage {} --shard K/N; \
             the --slurm chain runs them in order)",
            later.name(),
            stage.name(),
            runner.out.display(),
            missing.len(),
            configs.len(),
            missing.join(", "),
            later.name(),
            stage.name(),
            stage.name()
        );
    }
    Ok(results)
}

/// [`search`], or with `only = (S, shard)` one shard of stage S: the stages
/// before S must be finished in the folder (their results are read, not
/// trained), S trains the shard's lockstep groups and records the shard, and
/// nothing after S runs.
pub fn search_stage(
    data: &Cifar10,
    opts: &SearchOptions,
    runner: &RunnerOptions,
    control: &Control,
    mode: DisplayMode,
    only: Option<(Stage, Shard)>,
) -> Result<SearchEnd> {
    let axis = opts.axis.name();
    let shard_end: std::cell::Cell<Option<SearchEnd>> = std::cell::Cell::new(None);
    // The stage's results and seconds, or None once a shard has run (see shard_end).
    let stage = |name: Stage, spec: &SweepSpec| -> Result<Option<(Vec<RunResult>, f64)>> {
        let t0 = std::time::Instant::now();
        let configs = spec.configs()?;
        for c in &configs {
            c.validate(c.split.train_len())?;
        }
        let out = runner.out.join(name.name());
        let r = RunnerOptions {
            out: out.clone(),
            ..runner.clone()
        };
        if let Some((later, shard)) = only {
            if name < later {
                return Ok(Some((finished_stage(name, later, &configs, &r)?, 0.0)));
            }
            let r = RunnerOptions {
                shard: Some(shard),
                ..r
            };
            let mine = crate::sweep::configs_here(&configs, &r);
            let dashboard = Dashboard::new(&mine, mode, |c| c.name.clone());
            dashboard.println(&format!(
                "== {} stage, shard {}: {} of {} runs",
                name.name(),
                shard.label(),
                mine.len(),
                configs.len()
            ));
            let results = run_configs_shard(&configs, data, &r, control, &dashboard)?;
            write_json(&out.join("sweep.json"), spec)?;
            let finished = results
                .iter()
                .flatten()
                .all(|r| r.status != Status::Interrupted);
            ShardRecord::now(
                shard,
                mine.iter().map(|c| c.name.clone()).collect(),
                finished,
                runner.threads,
                t0.elapsed().as_secs_f64(),
            )
            .write(&out)?;
            shard_end.set(Some(SearchEnd::Shard {
                stage: name,
                shard,
                trained: mine.len(),
                of: configs.len(),
                finished,
            }));
            return Ok(None);
        }
        let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
        let first = configs.first();
        dashboard.println(&format!(
            "== {} stage: {} run{}, {}, {} training images",
            name.name(),
            configs.len(),
            if configs.len() == 1 { "" } else { "s" },
            first.map_or(String::new(), |c| c.schedule.describe()),
            spec.base.split.train_len()
        ));
        let results = run_configs(&configs, data, &r, control, &dashboard)?;
        write_tables(&out, &results, &axis_columns(spec))?;
        write_json(&out.join("sweep.json"), spec)?;
        Ok(Some((results, t0.elapsed().as_secs_f64())))
    };
    let interrupted = |r: &[RunResult]| r.iter().any(|r| r.status == Status::Interrupted);
    let coarse_spec = opts.coarse()?;
    let Some((coarse, t_coarse)) = stage(Stage::Coarse, &coarse_spec)? else {
        return Ok(shard_end.take().expect("a shard ran"));
    };
    if interrupted(&coarse) {
        return Ok(SearchEnd::Interrupted);
    }
    let coarse_values = values_of(&coarse_spec);
    let Some(&best_i) = ranking(&coarse)
        .first()
        .filter(|&&i| coarse[i].status == Status::Done)
    else {
        bail!("every coarse run diverged: lower --eta-max (or the learning rate)");
    };
    let best_coarse = coarse_values[best_i];
    // The fine range is centred on the best value so far.
    let lo = best_coarse * 10f64.powf(-opts.fine_decades);
    let hi = best_coarse * 10f64.powf(opts.fine_decades);
    let fine_spec = opts.stage(
        "fine",
        TrainSettings {
            cycles: opts.fine_cycles,
            ..opts.base.clone()
        },
        opts.draw(lo, hi, opts.fine_n, opts.base.seed.wrapping_add(1))?,
        true,
    );
    let Some((fine, t_fine)) = stage(Stage::Fine, &fine_spec)? else {
        return Ok(shard_end.take().expect("a shard ran"));
    };
    if interrupted(&fine) {
        return Ok(SearchEnd::Interrupted);
    }
    let fine_values = values_of(&fine_spec);
    // The final values: the top K of both stages by validation accuracy.
    let pool: Vec<(&RunResult, f64)> = coarse
        .iter()
        .zip(coarse_values.iter().copied())
        .chain(fine.iter().zip(fine_values.iter().copied()))
        .collect();
    let pooled: Vec<RunResult> = pool.iter().map(|p| p.0.clone()).collect();
    let mut chosen: Vec<f64> = Vec::new();
    for i in ranking(&pooled) {
        if chosen.len() == opts.top {
            break;
        }
        if pool[i].0.status == Status::Done && !chosen.contains(&pool[i].1) {
            chosen.push(pool[i].1);
        }
    }
    let final_spec = opts.stage(
        "final",
        TrainSettings {
            cycles: opts.final_cycles,
            ns: 0,
            split: crate::data::SplitSpec {
                kind: SplitKind::Full,
                n_val: opts.final_n_val,
                n_train: None,
                ..opts.base.split
            },
            ..opts.base.clone()
        },
        AxisValues {
            axis: opts.axis,
            values: chosen.iter().map(|&v| Value::Num(v)).collect(),
        },
        false,
    );
    let Some((finals, t_final)) = stage(Stage::Final, &final_spec)? else {
        return Ok(shard_end.take().expect("a shard ran"));
    };
    if interrupted(&finals) {
        return Ok(SearchEnd::Interrupted);
    }
    let summary = SearchSummary {
        axis: axis.to_string(),
        coarse_values,
        fine_values,
        final_values: chosen,
        coarse,
        fine,
        finals,
        best_coarse_value: best_coarse,
        fine_range: (lo, hi),
        stage_s: [t_coarse, t_fine, t_final],
    };
    write_json(&runner.out.join("summary.json"), &summary)?;
    write_atomic(
        &runner.out.join("summary.md"),
        summary.markdown().as_bytes(),
    )?;
    Ok(SearchEnd::Done(Box::new(summary)))
}

/// Flags of `shallow search`.
#[derive(Args)]
pub struct SearchArgs {
    /// The scale axis searched: lambda, eta (fixed schedule), eta_min or eta_max.
    #[arg(long, default_value = "lambda")]
    pub axis: String,
    /// Coarse range, LO:HI:N: N values log-uniform at random in [LO, HI]
    /// [lambda: 1e-5:1e-1:8; other axes: give it].
    #[arg(long, value_name = "LO:HI:N")]
    pub coarse: Option<String>,
    /// Coarse cycles (cyclical schedule).
    #[arg(long, default_value_t = 2)]
    pub coarse_cycles: usize,
    /// Fine values.
    #[arg(long, default_value_t = 8)]
    pub fine_n: usize,
    /// Fine cycles.
    #[arg(long, default_value_t = 3)]
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best value so far, in decades.
    #[arg(long, default_value_t = 0.5)]
    pub fine_decades: f64,
    /// Final runs: the best K values of the coarse and fine stages together,
    /// by validation accuracy, trained on all but --final-n-val images.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Final cycles.
    #[arg(long, default_value_t = 3)]
    pub final_cycles: usize,
    /// Validation images held out in the final runs.
    #[arg(long, default_value_t = 1000)]
    pub final_n_val: usize,
    /// TOML file with fixed settings (the same names as the flags; no axes).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Every `shallow train` setting, fixed for every stage.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Continue an interrupted search in the same --out (refused when the plan differs).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds another search, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// With --shard: the stage whose shard runs. The stages before it must be
    /// finished in --out (their results are read); none after it runs.
    #[arg(long, value_enum, requires = "shard")]
    pub stage: Option<Stage>,
    /// Train only shard K of N (counting from 0) of --stage's lockstep groups
    /// (a Slurm array task of the --slurm chain); `shallow search --resume`
    /// then writes the summary and report.
    #[arg(long, value_name = "K/N", requires = "stage", conflicts_with_all = ["force", "slurm"])]
    pub shard: Option<String>,
    /// Slurm: write (and submit) the chain of job scripts instead of training here.
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The search `a` asks for, checked.
pub fn search_options(a: &SearchArgs) -> Result<SearchOptions> {
    let axis = Axis::parse(&a.axis)?;
    if !axis.is_scale() {
        bail!(
            "--axis {}: search a scale axis (lambda, eta, eta_min or eta_max); sweep other axes with `shallow sweep --grid`",
            axis.name()
        );
    }
    let defaults = SearchOptions::default();
    let coarse = match (&a.coarse, axis) {
        (Some(c), _) => c.clone(),
        (None, Axis::Lambda) => "1e-5:1e-1:8".into(),
        (None, _) => bail!(
            "--axis {}: give its coarse range, e.g. --coarse 1e-3:1:8",
            axis.name()
        ),
    };
    let coarse_range = crate::sweep::plan::parse_log_range("--coarse", &coarse)?;
    let file = match &a.config {
        Some(p) => SweepSettings::from_toml_file(p)?,
        None => SweepSettings::default(),
    };
    let mut flags = a.settings.settings();
    if axis.schedule() == Some(crate::train::ScheduleKind::Fixed) {
        flags
            .schedule
            .get_or_insert(crate::train::ScheduleKind::Fixed);
    }
    let merged = flags.over(file)?;
    if merged.grid.is_some() || merged.random.is_some() || merged.draws.is_some() {
        bail!("search takes fixed settings only: its axis is --axis; sweep grids with `shallow sweep`");
    }
    if merged.fixed_axes().contains(&axis) {
        bail!(
            "search varies {name} (--axis {name}), so a fixed {name} would be dropped: give its range with --coarse, \
             not a fixed value",
            name = axis.name()
        );
    }
    let mut base = merged.train_settings(defaults.base.clone())?;
    if a.settings.cycles.is_none() && merged.cycles.is_none() {
        base.cycles = a.coarse_cycles;
    }
    if a.fine_n == 0
        || a.fine_cycles == 0
        || a.final_cycles == 0
        || a.top == 0
        || a.fine_decades.is_nan()
        || a.fine_decades < 0.0
    {
        bail!("--fine-n, --fine-cycles, --final-cycles and --top must be at least 1, --fine-decades >= 0");
    }
    let opts = SearchOptions {
        axis,
        coarse_range,
        base,
        fine_n: a.fine_n,
        fine_cycles: a.fine_cycles,
        fine_decades: a.fine_decades,
        top: a.top,
        final_cycles: a.final_cycles,
        final_n_val: a.final_n_val,
    };
    for c in opts.coarse()?.configs()? {
        c.validate(c.split.train_len())?;
    }
    Ok(opts)
}

/// `shallow search`: validates the flags of `a`, runs the search (or one
/// stage's shard, or writes its Slurm chain), prints its summary, and writes
/// summary.png and the report.
pub fn run(a: &SearchArgs, control: &Control) -> Result<Finish> {
    let opts = search_options(a)?;
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let threads = super::common::threads(a.common.threads)?;
    let kind = crate::folder::FolderKind::Search;
    if let Some(n) = a.slurm.slurm {
        let _lock = super::common::claim_out(&a.common, kind, a.force)?;
        return write_slurm(a, &opts, n);
    }
    let coarse = opts.coarse()?.configs()?;
    let jobs = a.jobs.unwrap_or(threads);
    crate::sweep::runner::check_memory(&coarse, crate::sweep::DEFAULT_MAX_GROUP, jobs)?;
    let label = a
        .stage
        .zip(shard)
        .map(|(stage, shard)| format!("{}-{}", stage.name(), shard.label()));
    let _lock = crate::folder::claim(
        &a.common.out,
        &crate::folder::Claim {
            shard: label.as_deref(),
            ..crate::folder::Claim::new(kind, a.force)
        },
    )?;
    let data = crate::data::load(a.common.data.data.as_deref())?;
    let runner = runner_options(
        &a.common,
        a.jobs,
        crate::sweep::DEFAULT_MAX_GROUP,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    let t0 = std::time::Instant::now();
    let mode = DisplayMode::detect(a.common.quiet);
    let only = a.stage.zip(shard);
    match search_stage(&data, &opts, &runner, control, mode, only)? {
        SearchEnd::Done(summary) => {
            crate::sweep::results::RunInfo::record(
                &a.common.out,
                "search",
                runner.threads,
                t0.elapsed().as_secs_f64(),
                a.resume,
            )?;
            crate::report::build::build(&a.common.out)?;
            print_summary(&a.common, &summary, &summary.text())?;
            Ok(Finish::Done)
        }
        SearchEnd::Interrupted => Ok(Finish::Interrupted),
        SearchEnd::Shard {
            stage,
            shard,
            trained,
            of,
            finished,
        } => {
            if a.common.json {
                super::common::print_json(&serde_json::json!({
                    "stage": stage, "shard": shard, "trained": trained, "of": of, "finished": finished
                }))?;
            } else if !a.common.quiet {
                crate::outln!(
                    "{} stage, shard {}: {trained} of {of} runs in {:.2} s into {}",
                    stage.name(),
                    shard.label(),
                    t0.elapsed().as_secs_f64(),
                    a.common.out.join(stage.name()).display()
                )?;
            }
            Ok(if finished {
                Finish::Done
            } else {
                Finish::Interrupted
            })
        }
    }
}

/// `--slurm N`: writes the chain coarse array -> fine array -> final array ->
/// report into --out/slurm (each after the one before succeeded), and
/// submits it with --submit.
fn write_slurm(a: &SearchArgs, opts: &SearchOptions, n: usize) -> Result<Finish> {
    use crate::sweep::slurm::{self, Job};
    let res = a.slurm.resources()?;
    if n == 0 {
        bail!("--slurm 0: give the number of array tasks (shards) per stage, at least 1");
    }
    let (out, data_dir, cwd) = super::sweep::slurm_paths(&a.common)?;
    let mut runner = runner_options(
        &a.common,
        a.jobs,
        crate::sweep::DEFAULT_MAX_GROUP,
        (a.resume, a.force),
        data_dir.display().to_string(),
    )?;
    // The coarse plan goes into the folder now (a shard computing another
    // refuses to run); --force clears the earlier search's stages.
    if a.force {
        for s in [Stage::Fine, Stage::Final] {
            crate::sweep::runner::clear_plan(&out.join(s.name()))?;
        }
    }
    runner.out = out.join(Stage::Coarse.name());
    crate::util::create_dir(&runner.out)?;
    let coarse = opts.coarse()?.configs()?;
    crate::sweep::runner::guard_plan(&coarse, &runner)?;
    let groups = |configs: &[crate::train::RunConfig]| {
        crate::sweep::shard::plan_groups(configs, crate::sweep::DEFAULT_MAX_GROUP).len()
    };
    // The fine stage has as many runs as --fine-n, the final one --top.
    let tasks = [n.min(groups(&coarse)), n.min(opts.fine_n), n.min(opts.top)];
    let rest = slurm::without_flags(
        &slurm::own_args("search"),
        &slurm::SLURM_VALUED,
        &slurm::SLURM_BARE,
    );
    let mut args = vec!["search".to_string()];
    args.extend(rest);
    args.extend(super::sweep::fixed_paths(&out, &data_dir));
    let threads = "--threads \"${SLURM_CPUS_PER_TASK:-1}\"";
    let mut jobs: Vec<Job> = [Stage::Coarse, Stage::Fine, Stage::Final]
        .into_iter()
        .zip(tasks)
        .enumerate()
        .map(|(i, (stage, t))| Job {
            file: format!("{}.sbatch", stage.name()),
            name: format!("shallow-{}", stage.name()),
            tasks: Some(t),
            after: i.checked_sub(1),
            cpus: res.cpus_per_task,
            args: [args.clone(), vec!["--stage".into(), stage.name().into()]].concat(),
            raw: format!("{threads} --shard \"$SLURM_ARRAY_TASK_ID/{t}\""),
        })
        .collect();
    jobs.push(Job {
        file: "report.sbatch".into(),
        name: "shallow-report".into(),
        tasks: None,
        after: Some(2),
        cpus: 1,
        args: [args, vec!["--resume".into()]].concat(),
        raw: "--threads 1".into(),
    });
    super::sweep::submit_or_tell(&out, &jobs, &res, &cwd, a.slurm.submit, "shallow-report")
}
