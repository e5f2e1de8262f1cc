//! `shallow search`, the coarse-to-fine lambda search (Assignment 2): a coarse
//! sweep, a fine sweep in a narrow log range around the best coarse lambda,
//! then a final training with the best lambda on more data, reporting test
//! accuracy.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use clap::Args;

use super::args::{CommonArgs, SweepShape};
use super::common::{print_summary, runner_options, Finish};
use crate::data::{Cifar10, SplitKind, SplitSpec};
use crate::sweep::plan::{LambdaSpec, SweepSpec};
use crate::sweep::results::{best, write_tables, SearchSummary};
use crate::sweep::{run_configs, Dashboard, DisplayMode, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::{Control, Status};
use crate::util::{write_atomic, write_json};

/// Settings of a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// The coarse sweep (its lambdas, cycles, split...).
    pub coarse: SweepSpec,
    /// Lambdas of the fine sweep.
    pub fine_n: usize,
    /// Cycles of the fine sweep.
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best coarse lambda, in decades.
    pub fine_decades: f64,
    /// Cycles of the final run.
    pub final_cycles: usize,
    /// Validation images held out in the final run.
    pub final_n_val: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        let coarse = SweepSpec {
            prefix: "coarse".into(),
            lambdas: LambdaSpec::Random {
                lo: 1e-5,
                hi: 1e-1,
                n: 8,
                seed: 1,
            },
            cycles: 2,
            ns: 900,
            ..SweepSpec::default()
        };
        SearchOptions {
            coarse,
            fine_n: 8,
            fine_cycles: 3,
            fine_decades: 0.5,
            final_cycles: 3,
            final_n_val: 1000,
        }
    }
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
    let stage = |name: &str, spec: &SweepSpec| -> Result<(Vec<RunResult>, f64)> {
        let t0 = std::time::Instant::now();
        let configs = spec.configs();
        let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
        dashboard.println(&format!(
            "== {name} stage: {} run{}, {} cycle{} of n_s {}, {} training images",
            configs.len(),
            if configs.len() == 1 { "" } else { "s" },
            spec.cycles,
            if spec.cycles == 1 { "" } else { "s" },
            configs
                .first()
                .map_or(spec.ns, |c| c.steps / (2 * spec.cycles.max(1))),
            spec.split.train_len()
        ));
        let out = runner.out.join(name);
        let r = RunnerOptions {
            out: out.clone(),
            ..runner.clone()
        };
        let results = run_configs(&configs, data, &r, control, &dashboard)?;
        write_tables(&out, &results)?;
        Ok((results, t0.elapsed().as_secs_f64()))
    };
    let interrupted = |r: &[RunResult]| r.iter().any(|r| r.status == Status::Interrupted);
    let (coarse, t_coarse) = stage("coarse", &opts.coarse)?;
    if interrupted(&coarse) {
        return Ok(None);
    }
    let Some(best_coarse) = best(&coarse).map(|r| r.lambda) else {
        bail!("every coarse run diverged: lower --eta-max");
    };
    let lo = best_coarse * 10f64.powf(-opts.fine_decades);
    let hi = best_coarse * 10f64.powf(opts.fine_decades);
    let fine_spec = SweepSpec {
        prefix: "fine".into(),
        lambdas: LambdaSpec::Random {
            lo,
            hi,
            n: opts.fine_n,
            seed: opts.coarse.seed.wrapping_add(1),
        },
        cycles: opts.fine_cycles,
        ..opts.coarse.clone()
    };
    let (fine, t_fine) = stage("fine", &fine_spec)?;
    if interrupted(&fine) {
        return Ok(None);
    }
    let best_lambda = best(&fine).map_or(best_coarse, |r| r.lambda);
    let final_spec = SweepSpec {
        prefix: "final".into(),
        lambdas: LambdaSpec::List(vec![best_lambda]),
        cycles: opts.final_cycles,
        split: SplitSpec {
            kind: SplitKind::Full,
            n_val: opts.final_n_val,
            n_train: None,
            ..opts.coarse.split
        },
        ns: 0,
        ..opts.coarse.clone()
    };
    let (mut fin, t_final) = stage("final", &final_spec)?;
    if interrupted(&fin) {
        return Ok(None);
    }
    let summary = SearchSummary {
        coarse,
        fine,
        final_run: fin.remove(0),
        best_coarse_lambda: best_coarse,
        fine_range: (lo, hi),
        best_lambda,
        stage_s: [t_coarse, t_fine, t_final],
    };
    write_json(&runner.out.join("summary.json"), &summary)?;
    write_atomic(
        &runner.out.join("summary.md"),
        summary.markdown().as_bytes(),
    )?;
    Ok(Some(summary))
}

/// Flags of `shallow search`.
#[derive(Args)]
pub struct SearchArgs {
    /// Coarse lambdas (LO:HI:N, log-uniform at random).
    #[arg(long, default_value = "1e-5:1e-1:8")]
    pub coarse: String,
    /// Coarse cycles.
    #[arg(long, default_value_t = 2)]
    pub coarse_cycles: usize,
    /// Fine lambdas.
    #[arg(long, default_value_t = 8)]
    pub fine_n: usize,
    /// Fine cycles.
    #[arg(long, default_value_t = 3)]
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best coarse lambda, in decades.
    #[arg(long, default_value_t = 0.5)]
    pub fine_decades: f64,
    /// Final cycles.
    #[arg(long, default_value_t = 3)]
    pub final_cycles: usize,
    /// Validation images held out in the final run.
    #[arg(long, default_value_t = 1000)]
    pub final_n_val: usize,
    /// What is trained: network, schedule, split, logging.
    #[command(flatten)]
    pub sweep: SweepShape,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Continue an interrupted search in the same --out (refused when the plan differs).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds another search, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `shallow search`: validates the flags of `a`, runs the search, prints its summary.
pub fn run(a: &SearchArgs, control: &Control) -> Result<Finish> {
    let (lo, hi, n) = LambdaSpec::parse_range(&a.coarse, "--coarse")?;
    let defaults = SearchOptions::default();
    let mut coarse = a.sweep.settings().spec(defaults.coarse.clone())?;
    coarse.lambdas = LambdaSpec::Random {
        lo,
        hi,
        n,
        seed: coarse.seed,
    };
    coarse.cycles = a.sweep.cycles.unwrap_or(a.coarse_cycles);
    let opts = SearchOptions {
        coarse,
        fine_n: a.fine_n,
        fine_cycles: a.fine_cycles,
        fine_decades: a.fine_decades,
        final_cycles: a.final_cycles,
        final_n_val: a.final_n_val,
    };
    for c in opts.coarse.configs() {
        c.validate(c.split.train_len())?;
    }
    if a.fine_n == 0
        || a.fine_cycles == 0
        || a.final_cycles == 0
        || a.fine_decades.is_nan()
        || a.fine_decades < 0.0
    {
        bail!("--fine-n, --fine-cycles and --final-cycles must be at least 1, --fine-decades >= 0");
    }
    crate::util::create_dir(&a.common.out)?;
    let data = crate::data::load(a.common.data.data.as_deref())?;
    let runner = runner_options(
        &a.common,
        a.jobs,
        crate::sweep::DEFAULT_MAX_GROUP,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    let mode = DisplayMode::detect(a.common.quiet);
    match search(&data, &opts, &runner, control, mode)? {
        Some(summary) => {
            print_summary(&a.common, &summary, &summary.text())?;
            Ok(Finish::Done)
        }
        None => Ok(Finish::Interrupted),
    }
}
