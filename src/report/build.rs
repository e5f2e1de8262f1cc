//! Builds `report.md` and `report.html` from the files an `experiment all` left
//! in its folder. Every number comes from the runs' own result files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::doc::{html, markdown, Block};
use crate::nn::gradcheck;
use crate::sweep::results::{ranking, SearchSummary, Summary};
use crate::train::output::RunResult;
use crate::util::write_atomic;

/// Environment and timing of an `experiment all`, written as `timings.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timings {
    /// (stage, seconds), in order.
    pub stages: Vec<(String, f64)>,
    /// Total seconds.
    pub total_s: f64,
    /// CPU model.
    pub cpu: String,
    /// Cores used.
    pub cores: usize,
    /// BLAS build.
    pub blas: String,
    /// shallow's version.
    pub version: String,
    /// Data folder.
    pub data_dir: String,
}

/// The CPU model from /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not what shallow wrote", path.display()))
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}", 100.0 * v)
    } else {
        "-".into()
    }
}

fn run_images(dir: &Path, rel: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for (file, what) in [
        ("curves.png", "cost, loss and accuracy"),
        ("weights.png", "weights as images"),
    ] {
        if dir.join(rel).join(file).exists() {
            v.push((rel.join(file), format!("{}: {what}", rel.display())));
        }
    }
    v
}

fn sweep_table(results: &[RunResult]) -> Block {
    let rows = ranking(results)
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let r = &results[i];
            vec![
                if rank == 0 {
                    format!("**{}** ★", r.name)
                } else {
                    r.name.clone()
                },
                format!("{:.3e}", r.lambda),
                pct(r.train_acc),
                pct(r.val_acc),
                pct(r.test_acc),
                format!("{}", r.steps),
                format!("{:.1}", r.wall_s),
                format!("{:?}", r.status).to_lowercase(),
            ]
        })
        .collect();
    Block::Table(
        [
            "run",
            "lambda",
            "train acc %",
            "val acc %",
            "test acc %",
            "steps",
            "seconds",
            "status",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    )
}

/// Builds the report of `dir`; returns the paths of report.md and report.html.
pub fn build(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: give the --out folder of `shallow experiment all`",
            dir.display()
        );
    }
    let mut b: Vec<Block> = vec![Block::Heading(
        1,
        "shallow: Assignments 1 and 2 on CIFAR-10".into(),
    )];
    let timings: Option<Timings> = read_json(&dir.join("timings.json")).ok();
    let mut found = 0;

    // Gradient checks.
    if let Ok(reports) = read_json::<Vec<gradcheck::Report>>(&dir.join("gradcheck.json")) {
        found += 1;
        b.push(Block::Heading(2, "Gradient checks".into()));
        b.push(Block::Para(
            "Analytic gradients (f64) against centred finite differences of the cost; relative error \
             |g_a - g_n| / max(eps, |g_a| + |g_n|), maximum over the entries of each parameter."
                .into(),
        ));
        for r in &reports {
            let o = &r.options;
            let model = if o.hidden.is_empty() {
                "linear".to_string()
            } else {
                format!("two-layer, m = {:?}", o.hidden)
            };
            b.push(Block::Heading(
                3,
                format!("{model}, loss {}, lambda {}", o.loss.name(), o.lambda),
            ));
            let rows = r
                .checks
                .iter()
                .map(|c| {
                    vec![
                        c.check.param.clone(),
                        format!("{}x{}", c.check.shape[0], c.check.shape[1]),
                        format!("{} features x {} images", c.dims, c.samples),
                        format!("{:.2e}", c.check.max_abs_err),
                        format!("{:.2e}", c.check.max_rel_err),
                        if c.check.passed {
                            "pass".into()
                        } else {
                            "**FAIL**".into()
                        },
                    ]
                })
                .collect();
            b.push(Block::Table(
                [
                    "parameter",
                    "shape",
                    "data",
                    "max abs error",
                    "max relative error",
                    "result",
                ]
                .map(String::from)
                .to_vec(),
                rows,
            ));
        }
    }

    // Assignment 1.
    if let Ok(a1) = read_json::<Summary>(&dir.join("a1/summary.json")) {
        found += 1;
        b.push(Block::Heading(
            2,
            "Assignment 1: one-layer softmax classifier".into(),
        ));
        b.push(Block::Para(
            "Mini-batch gradient descent, batch 100, 40 epochs, trained on data_batch_1, validated on data_batch_2, \
             tested on test_batch; W initialised from N(0, 0.01^2)."
                .into(),
        ));
        b.push(summary_table(&a1));
        for r in &a1.runs {
            b.push(Block::Heading(
                3,
                format!(
                    "lambda = {}, eta = {}: test accuracy {}%",
                    r.lambda,
                    r.eta,
                    pct(r.test_acc)
                ),
            ));
            b.push(Block::Images(run_images(
                dir,
                &Path::new("a1").join(&r.name),
            )));
        }
    }

    // Assignment 2.
    if let Ok(a2) = read_json::<Summary>(&dir.join("a2/summary.json")) {
        found += 1;
        b.push(Block::Heading(
            2,
            "Assignment 2: two-layer network with cyclical learning rates".into(),
        ));
        b.push(Block::Para("m = 50, lambda = 0.01, batch 100, eta cycling between 1e-5 and 1e-1, split as in Assignment 1.".into()));
        b.push(summary_table(&a2));
        for r in &a2.runs {
            b.push(Block::Heading(
                3,
                format!("{}: test accuracy {}%", r.name, pct(r.test_acc)),
            ));
            b.push(Block::Images(run_images(
                dir,
                &Path::new("a2").join(&r.name),
            )));
        }
    }

    // Lambda search.
    if let Ok(s) = read_json::<SearchSummary>(&dir.join("search/summary.json")) {
        found += 1;
        b.push(Block::Heading(2, "Coarse-to-fine lambda search".into()));
        b.push(Block::Para(format!(
            "Coarse: {} lambdas log-uniform at random, {} steps each on 45,000 training images (5,000 validate). \
             Fine: {} lambdas in {:.2e}..{:.2e}. Best lambda: **{:.3e}**.",
            s.coarse.len(),
            s.coarse.first().map_or(0, |r| r.steps),
            s.fine.len(),
            s.fine_range.0,
            s.fine_range.1,
            s.best_lambda
        )));
        if dir.join("search/lambda.png").exists() {
            b.push(Block::Images(vec![(
                PathBuf::from("search/lambda.png"),
                "validation accuracy against lambda".into(),
            )]));
        }
        for (stage, results) in [("coarse", &s.coarse), ("fine", &s.fine)] {
            b.push(Block::Heading(
                3,
                format!("{stage} sweep, sorted by validation accuracy"),
            ));
            b.push(sweep_table(results));
            if let Some(&best) = ranking(results).first() {
                b.push(Block::Images(run_images(
                    dir,
                    &Path::new("search").join(stage).join(&results[best].name),
                )));
            }
        }
        let f = &s.final_run;
        b.push(Block::Heading(
            3,
            format!(
                "Final training with lambda {:.3e}: test accuracy {}%",
                f.lambda,
                pct(f.test_acc)
            ),
        ));
        b.push(Block::Para(format!(
            "Trained on 49,000 images (1,000 validate), {} steps: train {}%, validation {}%, **test {}%**.",
            f.steps,
            pct(f.train_acc),
            pct(f.val_acc),
            pct(f.test_acc)
        )));
        b.push(Block::Images(run_images(
            dir,
            &Path::new("search/final").join(&f.name),
        )));
    }
    if found == 0 {
        bail!("{} holds no results of `shallow experiment`: run `shallow experiment all --out {}` first", dir.display(), dir.display());
    }

    // Environment.
    b.push(Block::Heading(2, "Environment".into()));
    if let Some(t) = &timings {
        b.push(Block::Table(
            ["", ""].map(String::from).to_vec(),
            vec![
                vec!["CPU".into(), t.cpu.clone()],
                vec!["cores used".into(), t.cores.to_string()],
                vec!["BLAS".into(), t.blas.clone()],
                vec!["shallow".into(), t.version.clone()],
                vec!["data".into(), t.data_dir.clone()],
                vec!["total time".into(), format!("{:.1} s", t.total_s)],
            ],
        ));
        b.push(Block::Table(
            ["stage", "seconds"].map(String::from).to_vec(),
            t.stages
                .iter()
                .map(|(n, s)| vec![n.clone(), format!("{s:.1}")])
                .collect(),
        ));
    } else {
        b.push(Block::Para(format!(
            "CPU {}; BLAS {}",
            cpu_model(),
            crate::nn::blas::describe()
        )));
    }
    let md = dir.join("report.md");
    let page = dir.join("report.html");
    write_atomic(&md, markdown(&b).as_bytes())?;
    write_atomic(&page, html("shallow report", &b, dir).as_bytes())?;
    Ok((md, page))
}

fn summary_table(s: &Summary) -> Block {
    let (header, rows) = s.table();
    Block::Table(header.map(String::from).to_vec(), rows)
}
