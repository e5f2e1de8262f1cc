//! `shallow sweep`: grids and random draws over any training setting, in
//! lockstep groups, with a live dashboard, a summary picture and a report.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::args::{AxesArgs, CommonArgs, SettingsArgs};
use super::common::{interrupted, print_json, runner_options, Finish};
use crate::sweep::plan::SweepSettings;
use crate::sweep::{results, run_configs, Dashboard, DisplayMode, SweepSpec};
use crate::train::{Control, TrainSettings};

/// Flags of `shallow sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// TOML file with the sweep's settings and axes (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The axes: --grid, --random, --draws and the lambda shorthands.
    #[command(flatten)]
    pub axes: AxesArgs,
    /// Every `shallow train` setting, fixed for the whole sweep.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Most configurations trained in lockstep per group. It decides the groups,
    /// and so the GEMM shapes: runs give the same numbers bit for bit for any
    /// --jobs and --threads, but a different --max-group changes their last bits.
    #[arg(long, default_value_t = crate::sweep::DEFAULT_MAX_GROUP)]
    pub max_group: usize,
    /// Continue an interrupted sweep in the same --out (refused when the plan differs).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds another sweep, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The flags of one layer (axes and fixed settings) as sweep settings.
pub fn flag_settings(axes: &AxesArgs, settings: &SettingsArgs) -> Result<SweepSettings> {
    axes.settings()?.over(settings.settings())
}

/// Builds a sweep from defaults, then the TOML file, then the flags.
pub fn sweep_spec(a: &SweepArgs) -> Result<SweepSpec> {
    let file = match &a.config {
        Some(p) => SweepSettings::from_toml_file(p)?,
        None => SweepSettings::default(),
    };
    flag_settings(&a.axes, &a.settings)?
        .over(file)?
        .spec(TrainSettings::sweep_default())
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

/// Runs the sweep of `a`, writes its tables, summary picture and report, and
/// prints the table.
pub fn run(a: &SweepArgs, control: &Control) -> Result<Finish> {
    let spec = sweep_spec(a)?;
    let configs = spec.configs()?;
    for c in &configs {
        c.validate(c.split.train_len())?;
    }
    crate::util::create_dir(&a.common.out)?;
    let data = crate::data::load(a.common.data.data.as_deref())?;
    let opts = runner_options(
        &a.common,
        a.jobs,
        a.max_group,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    let names = labels(&spec);
    let label = |c: &crate::train::RunConfig| {
        configs
            .iter()
            .position(|x| x.name == c.name)
            .map_or_else(|| c.name.clone(), |i| names[i].clone())
    };
    let dashboard = Dashboard::new(&configs, DisplayMode::detect(a.common.quiet), label);
    let t0 = std::time::Instant::now();
    let results = run_configs(&configs, &data, &opts, control, &dashboard)?;
    let wall_s = t0.elapsed().as_secs_f64();
    // Written once the plan was accepted (a refused --resume leaves the folder as it was).
    crate::util::write_json(&a.common.out.join("sweep.json"), &spec)?;
    let columns = results::axis_columns(&spec);
    results::write_tables(&a.common.out, &results, &columns)?;
    let done = !interrupted(&results);
    if done {
        results::RunInfo::record(&a.common.out, "sweep", opts.threads, wall_s, a.resume)?;
        crate::report::build::build(&a.common.out)?;
    }
    if a.common.json {
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
        let best = results::best(&results);
        print_json(&serde_json::json!({"runs": runs, "best": best, "wall_s": wall_s}))?;
    } else if !a.common.quiet {
        print!("{}", results::text_table(&results, &columns));
        println!(
            "{} runs in {wall_s:.2} s; tables{} in {}",
            results.len(),
            if done {
                ", summary.png and report.html"
            } else {
                ""
            },
            a.common.out.display()
        );
    }
    Ok(if done {
        Finish::Done
    } else {
        Finish::Interrupted
    })
}
