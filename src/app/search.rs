//! `shallow search`: its flags, the search's settings made of them, and the
//! call to [`crate::pipeline::search`] (or the Slurm chain of its stages).

use anyhow::{bail, Result};

use clap::Args;

use super::args::{CommonArgs, RungArgs, SettingsArgs, SlurmArgs};
use super::common::{print_summary, runner_options, Finish};
pub use crate::pipeline::search::{search, search_stage, SearchEnd, SearchOptions, Stage};
use crate::sweep::plan::SweepSettings;
use crate::sweep::shard::Shard;
use crate::train::{Axis, Control};
use crate::ui::DisplayMode;

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
    /// Validation images held out in the final runs [default: 1000, or a tenth
    /// of the training images when there are fewer than 10,000].
    #[arg(long)]
    pub final_n_val: Option<usize>,
    /// How the values for the final runs are found: coarse-fine (Assignment
    /// 2's two stages), or halving or hyperband (--coarse's draws pruned in
    /// lockstep from --min-cycles to --max-cycles, in place of both stages;
    /// hyperband draws as many values as its brackets start with).
    #[arg(long, value_enum, default_value_t = SearchMethod::CoarseFine)]
    pub method: SearchMethod,
    /// The rungs of --method halving or hyperband.
    #[command(flatten)]
    pub rungs: RungArgs,
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

/// How `shallow search` finds the values of its final runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchMethod {
    /// A coarse random stage, then a fine one around its best value.
    CoarseFine,
    /// Successive halving over the coarse range's draws.
    Halving,
    /// Hyperband over draws of the coarse range.
    Hyperband,
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
    let data = crate::data::probe(&a.common.data.source())?;
    let mut base = defaults.base.clone().for_data(data);
    if !data.is_cifar10() {
        // A2's n_s of 900 is two epochs of 45,000 images: two epochs of any other data.
        base.ns = 0;
    }
    let mut base = merged.train_settings(base)?;
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
        final_n_val: a
            .final_n_val
            .unwrap_or(defaults.final_n_val.min(data.default_n_val())),
        prune: None,
    };
    let method = match a.method {
        SearchMethod::CoarseFine => None,
        SearchMethod::Halving => Some(crate::sweep::ladder::Method::Halving),
        SearchMethod::Hyperband => Some(crate::sweep::ladder::Method::Hyperband),
    };
    let prune = a
        .rungs
        .flags(method, "add --method halving or --method hyperband")?;
    let opts = SearchOptions {
        prune: method.map(|_| prune),
        ..opts
    };
    if let Some((spec, ladder)) = opts.pruned()? {
        crate::sweep::halving::check(&spec.configs()?, &ladder)?;
    }
    for c in opts.coarse()?.configs()? {
        c.validate(c.split.train_len())?;
    }
    super::common::say_fast_choice();
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
    let data = crate::data::load(&a.common.data.source())?;
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
    // Each job re-runs this command line, less the Slurm flags, with absolute paths.
    let mut args = vec!["search".to_string()];
    args.extend(slurm::without_flags(
        &slurm::own_args("search"),
        &slurm::SLURM_VALUED,
        &slurm::SLURM_BARE,
    ));
    args.extend(super::sweep::fixed_paths(
        &out,
        &data_dir,
        &a.common.data.source(),
    ));
    if let Some((spec, ladder)) = opts.pruned()? {
        let chain = Chain {
            res,
            out,
            cwd,
            args,
        };
        return write_pruned_slurm(a, opts, (&spec, &ladder), n, runner, chain);
    }
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
    let mut jobs: Vec<Job> = [Stage::Coarse, Stage::Fine, Stage::Final]
        .into_iter()
        .zip(tasks)
        .enumerate()
        .map(|(i, (stage, t))| {
            let stage_args = [args.clone(), vec!["--stage".into(), stage.name().into()]].concat();
            super::sweep::shard_array(
                stage.name(),
                t,
                i.checked_sub(1),
                res.cpus_per_task,
                &stage_args,
            )
        })
        .collect();
    jobs.push(report_job(args, jobs.len() - 1));
    super::sweep::submit_or_tell(&out, &jobs, &res, &cwd, a.slurm.submit, "shallow-report")
}

/// What every job of a search's Slurm chain shares: the resources, the
/// absolute --out, the folder the command runs in, and the command line.
struct Chain {
    res: crate::sweep::slurm::Resources,
    out: std::path::PathBuf,
    cwd: std::path::PathBuf,
    args: Vec<String>,
}

/// `--slurm N` for `--method halving|hyperband`: per rung an array of the
/// pruned stage's shards and `sweep merge` of its folder (which decides the
/// rung), then the final array and the report, each after the one before.
fn write_pruned_slurm(
    a: &SearchArgs,
    opts: &SearchOptions,
    (spec, ladder): (&crate::sweep::SweepSpec, &crate::sweep::ladder::Ladder),
    n: usize,
    mut runner: crate::sweep::RunnerOptions,
    Chain {
        res,
        out,
        cwd,
        args,
    }: Chain,
) -> Result<Finish> {
    let stage = Stage::pruned(ladder.method);
    if a.force {
        crate::sweep::runner::clear_plan(&out.join(Stage::Final.name()))?;
    }
    // The pruned stage's plan goes into its folder now.
    runner.out = out.join(stage.name());
    runner.ladder = Some(ladder.clone());
    crate::util::create_dir(&runner.out)?;
    crate::sweep::runner::guard_plan(&spec.configs()?, &runner)?;
    crate::util::write_json(&runner.out.join("sweep.json"), spec)?;
    let stage_args = [args.clone(), vec!["--stage".into(), stage.name().into()]].concat();
    let mut jobs = super::sweep::rung_jobs(ladder, &stage_args, &runner.out, n, res.cpus_per_task);
    let t = n.min(opts.top);
    let final_args = [args.clone(), vec!["--stage".into(), "final".into()]].concat();
    let after = Some(jobs.len() - 1);
    jobs.push(super::sweep::shard_array(
        "final",
        t,
        after,
        res.cpus_per_task,
        &final_args,
    ));
    jobs.push(report_job(args, jobs.len() - 1));
    super::sweep::submit_or_tell(&out, &jobs, &res, &cwd, a.slurm.submit, "shallow-report")
}

/// The one-task job that finishes a search's chain after job `after`: the
/// search again with `--resume`, which reads every stage, writes the summary
/// and the report.
fn report_job(args: Vec<String>, after: usize) -> crate::sweep::slurm::Job {
    crate::sweep::slurm::Job {
        file: "report.sbatch".into(),
        name: "shallow-report".into(),
        tasks: None,
        after: Some(after),
        cpus: 1,
        args: [args, vec!["--resume".into()]].concat(),
        raw: "--threads 1".into(),
    }
}
