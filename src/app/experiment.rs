//! `shallow experiment`: the assignments' fixed experiments as plans of runs
//! (a1, a2), and `all`: gradient checks, both assignments, the lambda search
//! and the report, into one folder.

use anyhow::Result;
use clap::Args;

use super::args::CommonArgs;
use super::common::{print_json, print_summary, run_and_write, runner_options, Finish};
use crate::data::SplitSpec;
use crate::nn::{Loss, Precision};
use crate::sweep::results::Summary;
use crate::sweep::RunnerOptions;
use crate::train::{Control, RunConfig};
use crate::ui::DisplayMode;
use crate::util::write_json;

/// Assignment 1: the four (lambda, eta) settings of the linear classifier
/// ([`RunConfig::a1`]).
pub fn a1_configs(seed: u64, precision: Precision) -> Vec<RunConfig> {
    [(0.0, 0.1), (0.0, 0.001), (0.1, 0.001), (1.0, 0.001)]
        .iter()
        .map(|&(lambda, eta)| RunConfig {
            seed,
            precision,
            ..RunConfig::a1(lambda, eta)
        })
        .collect()
}

/// Assignment 2: one cycle with n_s = 500 and three cycles with n_s = 800
/// ([`RunConfig::a2`]).
pub fn a2_configs(seed: u64, precision: Precision) -> Vec<RunConfig> {
    [(500usize, 1usize), (800, 3)]
        .iter()
        .map(|&(ns, cycles)| RunConfig {
            seed,
            precision,
            ..RunConfig::a2(ns, cycles)
        })
        .collect()
}

/// Settings of `shallow experiment all`.
#[derive(Clone, Debug)]
pub struct AllOptions {
    /// Base seed.
    pub seed: u64,
    /// Tiny versions of every stage (a smoke test of the whole pipeline).
    pub quick: bool,
    /// Runner settings; `out` is the experiment folder.
    pub runner: RunnerOptions,
    /// Progress display.
    pub mode: DisplayMode,
}

/// Runs gradient checks, Assignment 1, Assignment 2 and the lambda search into
/// `opts.runner.out`, then writes the report. Returns the report's paths, or
/// `None` when interrupted (finished runs and checkpoints are kept).
pub fn run_all(
    data: &crate::data::Cifar10,
    opts: &AllOptions,
    control: &crate::train::Control,
) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>> {
    use super::search::{search, SearchOptions};
    use crate::nn::gradcheck;
    use crate::report::build::{cpu_model, Timings};
    use crate::sweep::run_configs;
    use crate::train::Status;
    use crate::ui::Dashboard;

    let t_all = std::time::Instant::now();
    let dir = opts.runner.out.clone();
    crate::util::create_dir(&dir)?;
    let mut stages: Vec<(String, f64)> = Vec::new();
    let say = |msg: &str| {
        if opts.mode != DisplayMode::Quiet {
            eprintln!("== {msg}");
        }
    };

    // 1. Gradient checks on real images.
    say("gradient checks (f64, centred differences)");
    let t = std::time::Instant::now();
    crate::nn::blas::set_threads(1);
    let split64 = crate::data::Split::<f64>::new(data, SplitSpec::default())?;
    let mut reports = Vec::new();
    let checks = [
        (vec![], vec![(20, 100), (3072, 2)]),
        (vec![50], vec![(20, 100)]),
    ];
    let bar = (opts.mode == DisplayMode::Live).then(|| {
        let b = indicatif::ProgressBar::new(2 * checks.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  gradient checks [{bar:24.cyan/blue}] {pos}/{len} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    for (hidden, subsets) in checks {
        let model = if hidden.is_empty() { "linear" } else { "mlp" };
        for lambda in [0.0, 0.1] {
            if let Some(b) = &bar {
                b.set_message(format!("{model}, lambda {lambda}"));
                b.tick();
            }
            let o = gradcheck::Options {
                hidden: hidden.clone(),
                loss: Loss::Ce,
                lambda,
                method: gradcheck::Method::Centred,
                h: 1e-5,
                eps: gradcheck::REL_EPS,
                tol: 1e-6,
                subsets: subsets.clone(),
                seed: opts.seed,
                batch_norm: false,
                dropout: 0.0,
                smoothing: 0.0,
            };
            let report = gradcheck::run(&o, Some((&split64.train, "CIFAR-10 data_batch_1".into())));
            let worst = report
                .checks
                .iter()
                .map(|c| c.check.max_rel_err)
                .fold(0.0, f64::max);
            let line = format!(
                "{model}, lambda {lambda}: max relative error {worst:.1e}, {}",
                if report.passed { "passed" } else { "FAILED" }
            );
            match &bar {
                Some(b) => {
                    b.println(format!("  {line}"));
                    b.inc(1);
                }
                None if opts.mode == DisplayMode::Plain => eprintln!("  {line}"),
                None => {}
            }
            reports.push(report);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    drop(split64);
    write_json(&dir.join("gradcheck.json"), &reports)?;
    stages.push(("gradient checks".into(), t.elapsed().as_secs_f64()));

    // 2-3. The assignments' fixed experiments.
    for (name, mut configs) in [
        ("a1", a1_configs(opts.seed, Precision::F32)),
        ("a2", a2_configs(opts.seed, Precision::F32)),
    ] {
        if opts.quick {
            for c in &mut configs {
                c.steps = c.steps.min(300);
                c.log_every = c.log_every.min(50);
            }
        }
        say(&format!(
            "{}: {} runs",
            if name == "a1" {
                "Assignment 1"
            } else {
                "Assignment 2"
            },
            configs.len()
        ));
        let t = std::time::Instant::now();
        let runner = RunnerOptions {
            out: dir.join(name),
            ..opts.runner.clone()
        };
        let dash = Dashboard::new(&configs, opts.mode, |c| c.name.clone());
        let results = run_configs(&configs, data, &runner, control, &dash)?;
        if results.iter().any(|r| r.status == Status::Interrupted) {
            return Ok(None);
        }
        let wall = t.elapsed().as_secs_f64();
        Summary::new(&results, wall).write(&runner.out)?;
        stages.push((format!("assignment {}", &name[1..]), wall));
    }

    // 4. Coarse-to-fine lambda search and the final run.
    say("lambda search: coarse, fine, final");
    let t = std::time::Instant::now();
    let mut search_opts = SearchOptions::default();
    search_opts.base.seed = opts.seed;
    search_opts.base.log_points = 4;
    if opts.quick {
        search_opts.coarse_range = (1e-5, 1e-1, 3);
        search_opts.base.ns = 50;
        search_opts.base.cycles = 1;
        search_opts.base.split.n_val = 500;
        search_opts.base.split.n_train = Some(2000);
        search_opts.fine_n = 2;
        search_opts.fine_cycles = 1;
        search_opts.top = 2;
        search_opts.final_cycles = 1;
        search_opts.final_n_val = 100;
    }
    let runner = RunnerOptions {
        out: dir.join("search"),
        ..opts.runner.clone()
    };
    if search(data, &search_opts, &runner, control, opts.mode)?.is_none() {
        return Ok(None);
    }
    stages.push(("lambda search".into(), t.elapsed().as_secs_f64()));

    let timings = Timings {
        stages,
        total_s: t_all.elapsed().as_secs_f64(),
        cpu: cpu_model(),
        cores: opts.runner.threads,
        blas: crate::nn::blas::describe(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        data_dir: data.dir.display().to_string(),
    };
    write_json(&dir.join("timings.json"), &timings)?;
    Ok(Some(crate::report::build::build(&dir)?))
}

/// Flags of `shallow experiment`.
#[derive(Args)]
pub struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub which: Experiment,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Floating-point precision: f32, f64, or bf16 (mixed, AVX512-BF16 CPUs).
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
    pub part: Vec<super::bonus::BonusPart>,
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
    crate::data::Cifar10,
    crate::sweep::RunnerOptions,
    crate::folder::FolderLock,
)> {
    super::common::threads(a.common.threads)?;
    let lock = super::common::claim_out(&a.common, kind, false)?;
    let data = super::common::load_or_fetch(a.common.data.data.as_deref())?;
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
    use super::bonus::{run_bonus, BonusOptions};
    let (data, runner, _lock) = fixed_experiment_setup(a, crate::folder::FolderKind::Bonus)?;
    let opts = BonusOptions {
        seed: a.seed,
        quick: a.quick,
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
