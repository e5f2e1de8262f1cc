//! `shallow sweep`: many lambdas in lockstep groups, with a live dashboard.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::args::{CommonArgs, SweepShape};
use super::common::{interrupted, print_json, runner_options, Finish};
use crate::sweep::plan::SweepSettings;
use crate::sweep::{results, run_configs, Dashboard, DisplayMode, SweepSpec};
use crate::train::Control;

/// Flags of `shallow sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// TOML file with the sweep's settings (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Lambdas as a list, e.g. 1e-5,1e-3,0.1.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["lambda_grid", "lambda_random"])]
    pub lambdas: Option<Vec<f64>>,
    /// N lambdas log-spaced in [LO, HI]: LO:HI:N.
    #[arg(long, value_name = "LO:HI:N", conflicts_with = "lambda_random")]
    pub lambda_grid: Option<String>,
    /// N lambdas log-uniform at random in [LO, HI] (seeded): LO:HI:N.
    #[arg(long, value_name = "LO:HI:N")]
    pub lambda_random: Option<String>,
    /// What is trained: network, schedule, split, logging.
    #[command(flatten)]
    pub sweep: SweepShape,
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

/// Builds a sweep from defaults, then the TOML file, then the flags.
pub fn sweep_spec(a: &SweepArgs) -> Result<SweepSpec> {
    let file = match &a.config {
        Some(p) => SweepSettings::from_toml_file(p)?,
        None => SweepSettings::default(),
    };
    let flags = SweepSettings {
        lambdas: a.lambdas.clone(),
        lambda_grid: a.lambda_grid.clone(),
        lambda_random: a.lambda_random.clone(),
        ..a.sweep.settings()
    };
    flags.over(file).spec(SweepSpec::default())
}

/// Runs the sweep of `a`, writes its tables and prints them.
pub fn run(a: &SweepArgs, control: &Control) -> Result<Finish> {
    let spec = sweep_spec(a)?;
    let configs = spec.configs();
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
    let dashboard = Dashboard::new(&configs, DisplayMode::detect(a.common.quiet), |c| {
        format!("lambda {:.3e}", c.lambda)
    });
    let t0 = std::time::Instant::now();
    let results = run_configs(&configs, &data, &opts, control, &dashboard)?;
    let wall_s = t0.elapsed().as_secs_f64();
    // Written once the plan was accepted (a refused --resume leaves the folder as it was).
    crate::util::write_json(&a.common.out.join("sweep.json"), &spec)?;
    results::write_tables(&a.common.out, &results)?;
    if a.common.json {
        let runs: Vec<serde_json::Value> = results
            .iter()
            .map(|r| serde_json::json!({"name": r.name, "lambda": r.lambda, "train_acc": r.train_acc, "val_acc": r.val_acc, "test_acc": r.test_acc, "steps": r.steps, "wall_s": r.wall_s, "status": r.status}))
            .collect();
        let best = results::best(&results);
        print_json(&serde_json::json!({"runs": runs, "best": best, "wall_s": wall_s}))?;
    } else if !a.common.quiet {
        print!("{}", results::text_table(&results));
        println!(
            "{} runs in {wall_s:.2} s; tables in {}",
            results.len(),
            a.common.out.display()
        );
    }
    Ok(if interrupted(&results) {
        Finish::Interrupted
    } else {
        Finish::Done
    })
}
