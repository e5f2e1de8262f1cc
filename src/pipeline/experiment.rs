//! The assignments' experiments: Assignment 1's four runs, Assignment 2's
//! two, and `experiment all` (gradient checks, both assignments, the lambda
//! search and its final runs, then the report).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use super::search::{search, SearchOptions};
use crate::data::{RawData, SplitSpec};
use crate::nn::gradcheck;
use crate::nn::{Loss, Precision};
use crate::report::build::{cpu_model, Timings};
use crate::sweep::results::Summary;
use crate::sweep::{run_configs, RunnerOptions};
use crate::train::{Control, RunConfig, Status};
use crate::ui::{Dashboard, DisplayMode};
use crate::util::write_json;

/// Assignment 1: the four (lambda, eta) settings of the linear classifier
/// ([`RunConfig::a1`]).
pub fn a1_configs(seed: u64, precision: Precision) -> Vec<RunConfig> {
    [(0.0, 0.1), (0.0, 0.001), (0.1, 0.001), (1.0, 0.001)]
        .iter()
        .map(|&(lambda, eta)| RunConfig {
            seed,
            precision: precision.resolved(false),
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
            precision: precision.resolved(false),
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
    data: &RawData,
    opts: &AllOptions,
    control: &Control,
) -> Result<Option<(PathBuf, PathBuf)>> {
    let t_all = Instant::now();
    let dir = opts.runner.out.clone();
    crate::util::create_dir(&dir)?;
    let mut stages: Vec<(String, f64)> = Vec::new();

    // 1. Gradient checks on real images.
    opts.mode
        .announce("gradient checks (f64, centred differences)");
    let t = Instant::now();
    gradient_checks(data, opts, &dir)?;
    stages.push(("gradient checks".into(), t.elapsed().as_secs_f64()));

    // 2-3. The assignments' fixed experiments.
    for (name, configs) in [
        ("a1", a1_configs(opts.seed, Precision::F32)),
        ("a2", a2_configs(opts.seed, Precision::F32)),
    ] {
        let t = Instant::now();
        if !assignment(data, opts, control, &dir, name, configs)? {
            return Ok(None);
        }
        stages.push((
            format!("assignment {}", &name[1..]),
            t.elapsed().as_secs_f64(),
        ));
    }

    // 4. Coarse-to-fine lambda search and the final run.
    opts.mode.announce("lambda search: coarse, fine, final");
    let t = Instant::now();
    let runner = RunnerOptions {
        out: dir.join("search"),
        ..opts.runner.clone()
    };
    if search(data, &opts.search(), &runner, control, opts.mode)?.is_none() {
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

impl AllOptions {
    /// The lambda search of `experiment all`: Assignment 2's, with four
    /// logged points per cycle (tiny with `quick`).
    fn search(&self) -> SearchOptions {
        let mut s = SearchOptions::default();
        s.base.seed = self.seed;
        s.base.log_points = 4;
        if self.quick {
            s.coarse_range = (1e-5, 1e-1, 3);
            s.base.ns = 50;
            s.base.cycles = 1;
            s.base.split.n_val = 500;
            s.base.split.n_train = Some(2000);
            s.fine_n = 2;
            s.fine_cycles = 1;
            s.top = 2;
            s.final_cycles = 1;
            s.final_n_val = 100;
        }
        s
    }
}

/// Gradient checks of the linear classifier and of m = 50 on real images, with
/// lambda 0 and 0.1, written to `dir`/gradcheck.json.
fn gradient_checks(data: &RawData, opts: &AllOptions, dir: &Path) -> Result<()> {
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
    write_json(&dir.join("gradcheck.json"), &reports)
}

/// One assignment's runs (`name` a1 or a2) into `dir`/`name` with their
/// summary; false when interrupted.
fn assignment(
    data: &RawData,
    opts: &AllOptions,
    control: &Control,
    dir: &Path,
    name: &str,
    mut configs: Vec<RunConfig>,
) -> Result<bool> {
    if opts.quick {
        for c in &mut configs {
            c.steps = c.steps.min(300);
            c.log_every = c.log_every.min(50);
        }
    }
    let title = if name == "a1" {
        "Assignment 1"
    } else {
        "Assignment 2"
    };
    opts.mode
        .announce(&format!("{title}: {} runs", configs.len()));
    let t = Instant::now();
    let runner = RunnerOptions {
        out: dir.join(name),
        ..opts.runner.clone()
    };
    let dash = Dashboard::new(&configs, opts.mode, |c| c.name.clone());
    let results = run_configs(&configs, data, &runner, control, &dash)?;
    if results.iter().any(|r| r.status == Status::Interrupted) {
        return Ok(false);
    }
    Summary::new(&results, t.elapsed().as_secs_f64()).write(&runner.out)?;
    Ok(true)
}
