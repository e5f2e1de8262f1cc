//! `shallow experiment`: the assignments' fixed experiments as plans of runs
//! (a1, a2), and `all`: gradient checks, both assignments, the lambda search
//! and the report, into one folder.

use anyhow::Result;
use clap::Args;

use super::args::CommonArgs;
use super::common::{print_json, print_summary, run_and_write, runner_options, Finish};
use crate::nn::Precision;
use crate::pipeline::experiment::{a1_configs, a2_configs, run_all, AllOptions};
use crate::sweep::results::Summary;
use crate::train::Control;
use crate::ui::DisplayMode;

/// Flags of `shallow experiment`.
#[derive(Args)]
pub struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub which: Experiment,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Floating-point precision: f32, f64, bf16 (mixed, AVX512-BF16 CPUs), int16
    /// (layer 0 in 16-bit integers, AVX2 CPUs) or fast (the fastest here).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// `all` only: tiny versions of every stage (a smoke test of the pipeline).
    #[arg(long)]
    pub quick: bool,
    /// Continue an interrupted experiment in the same --out.
    #[arg(long)]
    pub resume: bool,
    /// `bonus` only: the parts to run (repeatable; all by default).
    #[arg(long, value_enum)]
    pub part: Vec<crate::pipeline::bonus::BonusPart>,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Which experiment `shallow experiment` runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Assignment 1: the four (lambda, eta) settings of the linear classifier.
    A1,
    /// Assignment 2: one cycle (n_s 500) and three cycles (n_s 800), m = 50.
    A2,
    /// Everything: gradient checks, A1, A2, lambda search, final run, report.
    All,
    /// The bonus: a one-hidden-layer recipe past 60%, a few-layer recipe with
    /// batch norm, and an ablation of every trick (tens of minutes).
    Bonus,
}

/// `shallow experiment a1|a2|all`: runs it and prints its summary.
pub fn run(a: &ExperimentArgs, control: &Control) -> Result<Finish> {
    if a.quick && matches!(a.which, Experiment::A1 | Experiment::A2) {
        anyhow::bail!("--quick shortens `experiment all` and `bonus`; a1 and a2 always train the assignment's runs: drop --quick");
    }
    if !a.part.is_empty() && a.which != Experiment::Bonus {
        anyhow::bail!(
            "--part chooses the parts of `experiment bonus`: drop it, or run `experiment bonus`"
        );
    }
    if a.which != Experiment::Bonus {
        let data = crate::data::probe(&a.common.data.source())?;
        if !data.is_cifar10() {
            anyhow::bail!(
                "experiment a1, a2 and all reproduce the CIFAR-10 assignments, and --data holds {}: \
                 use `shallow train`, `sweep`, `search` or `experiment bonus` on other data",
                data.describe()
            );
        }
    }
    let configs = match a.which {
        Experiment::A1 => a1_configs(a.seed, a.precision),
        Experiment::A2 => a2_configs(a.seed, a.precision),
        Experiment::All => return run_everything(a, control),
        Experiment::Bonus => return run_bonus_command(a, control),
    };
    let threads = super::common::check_runs(&configs, &a.common)?;
    let _lock = super::common::claim_out(&a.common, crate::folder::FolderKind::Experiment, false)?;
    let t0 = std::time::Instant::now();
    let results = run_and_write(configs, &a.common, (threads, a.resume), control)?;
    let summary = Summary::new(&results, t0.elapsed().as_secs_f64());
    summary.write(&a.common.out)?;
    print_summary(&a.common, &summary, &summary.text())?;
    Ok(if super::common::interrupted(&results) {
        Finish::Interrupted
    } else {
        Finish::Done
    })
}

/// The output folder, the data (fetched when missing) and the runner of a fixed
/// experiment (`all`, `bonus`): without --resume it starts over in its folder.
fn fixed_experiment_setup(
    a: &ExperimentArgs,
    kind: crate::folder::FolderKind,
) -> Result<(
    crate::data::RawData,
    crate::sweep::RunnerOptions,
    crate::folder::FolderLock,
)> {
    super::common::threads(a.common.threads)?;
    let lock = super::common::claim_out(&a.common, kind, false)?;
    let data = super::common::load_or_fetch(&a.common.data.source())?;
    let runner = runner_options(
        &a.common,
        None,
        crate::sweep::DEFAULT_MAX_GROUP,
        (a.resume, !a.resume),
        data.dir.display().to_string(),
    )?;
    Ok((data, runner, lock))
}

/// `experiment bonus`: the recipes and the ablation, then the report; `--json`
/// prints bonus.json.
fn run_bonus_command(a: &ExperimentArgs, control: &Control) -> Result<Finish> {
    use crate::pipeline::bonus::{run_bonus, BonusOptions};
    let (data, runner, _lock) = fixed_experiment_setup(a, crate::folder::FolderKind::Bonus)?;
    let opts = BonusOptions {
        seed: a.seed,
        quick: a.quick,
        precision: a.precision,
        parts: a.part.clone(),
        runner,
        mode: DisplayMode::detect(a.common.quiet),
    };
    let Some(summary) = run_bonus(&data, &opts, control)? else {
        return Ok(Finish::Interrupted);
    };
    if a.common.json {
        print_json(&summary)?;
    } else {
        for r in &summary.runs {
            crate::outln!(
                "{:<11} {:<12} test {:.2}% (target {:.0}%), validation {:.2}%, {:.0} s",
                r.name,
                format!("{:?}", r.hidden),
                100.0 * r.test_acc,
                100.0 * r.target,
                100.0 * r.val_acc,
                r.wall_s
            )?;
        }
        if !summary.ablation.is_empty() {
            let header: Vec<String> = ["ablation", "val %", "test %", "points", "against"]
                .map(String::from)
                .to_vec();
            let rows: Vec<Vec<String>> = summary
                .ablation
                .iter()
                .map(|r| {
                    vec![
                        r.change.clone(),
                        format!("{:.2}", 100.0 * r.val_acc),
                        format!("{:.2}", 100.0 * r.test_acc),
                        r.delta.map_or("-".into(), |d| format!("{:+.2}", 100.0 * d)),
                        r.against.clone(),
                    ]
                })
                .collect();
            let width = crate::util::terminal_width().unwrap_or(usize::MAX);
            crate::out!(
                "{}",
                crate::util::text_table_fit(&header, &rows, width, &["against", "val %"])
            )?;
        }
        crate::outln!(
            "report: {} ({:.0} s)",
            a.common.out.join("report.html").display(),
            summary.wall_s
        )?;
    }
    Ok(Finish::Done)
}

/// `experiment all`: every stage, then the report.
fn run_everything(a: &ExperimentArgs, control: &Control) -> Result<Finish> {
    let t0 = std::time::Instant::now();
    let (data, runner, _lock) = fixed_experiment_setup(a, crate::folder::FolderKind::Experiment)?;
    let opts = AllOptions {
        seed: a.seed,
        quick: a.quick,
        runner,
        mode: DisplayMode::detect(a.common.quiet),
    };
    match run_all(&data, &opts, control)? {
        Some((md, html)) => {
            if a.common.json {
                print_json(
                    &serde_json::json!({"report_md": md, "report_html": html, "wall_s": t0.elapsed().as_secs_f64()}),
                )?;
            } else {
                crate::outln!(
                    "report: {} and {} ({:.1} s)",
                    html.display(),
                    md.display(),
                    t0.elapsed().as_secs_f64()
                )?;
            }
            Ok(Finish::Done)
        }
        None => Ok(Finish::Interrupted),
    }
}
