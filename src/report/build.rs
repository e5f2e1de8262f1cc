//! Builds `report.md` and `report.html` from the files a command left in its
//! folder: an `experiment all`, a sweep, a search or a single run. Every number
//! comes from the runs' own result files; the summary pictures are redrawn.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::doc::{html, markdown, Block};
use super::summary::{summary_png, Point};
use crate::nn::gradcheck;
use crate::sweep::results::{self, axis_columns, ranking, RunInfo, SearchSummary, Summary};
use crate::sweep::SweepSpec;
use crate::train::output::RunResult;
use crate::train::{Axis, Value};
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

pub use crate::util::cpu_model;

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
        (
            "confusion.png",
            "confusion matrix on the test split (shallow evaluate)",
        ),
    ] {
        if dir.join(rel).join(file).exists() {
            v.push((rel.join(file), format!("{}: {what}", rel.display())));
        }
    }
    v
}

fn results_block(results: &[RunResult], columns: &results::Columns) -> Block {
    let (header, rows) = results::table(results, columns, true);
    Block::Table(header, rows)
}

pub use crate::folder::FolderKind;

/// What `dir` holds: the kind its command recorded ([`crate::folder::kind_of`]).
pub fn folder_kind(dir: &Path) -> Option<FolderKind> {
    crate::folder::kind_of(dir)
}

/// Builds the report of `dir`, whatever command wrote it (see [`folder_kind`]);
/// returns the paths of report.md and report.html.
pub fn build(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: give the --out folder of `shallow experiment`, `sweep`, `search` or `train`",
            dir.display()
        );
    }
    let (title, blocks) = match folder_kind(dir) {
        Some(FolderKind::Experiment) => ("shallow report".to_string(), experiment_blocks(dir)?),
        Some(FolderKind::Search) => ("shallow search".to_string(), search_blocks(dir)?),
        Some(FolderKind::Sweep) => ("shallow sweep".to_string(), sweep_blocks(dir)?),
        Some(FolderKind::Run | FolderKind::LrRange) => {
            ("shallow run".to_string(), run_blocks(dir)?)
        }
        Some(FolderKind::Bonus) => ("shallow bonus".to_string(), super::bonus::blocks(dir)?),
        None => bail!(
            "{} holds no results of shallow (no sweep.json, summary.json, result.json or timings.json): \
             give the --out folder of `shallow experiment`, `sweep`, `search` or `train`",
            dir.display()
        ),
    };
    let md = dir.join("report.md");
    let page = dir.join("report.html");
    write_atomic(&md, markdown(&blocks).as_bytes())?;
    write_atomic(&page, html(&title, &blocks, dir).as_bytes())?;
    Ok((md, page))
}

/// "What was run" of a sweep or search folder, from its run.json.
fn run_info_blocks(dir: &Path, seed: u64) -> Vec<Block> {
    let mut b = Vec::new();
    match read_json::<RunInfo>(&dir.join(results::RUN_INFO)) {
        Ok(i) => {
            b.push(Block::Pre(i.command.clone()));
            b.push(Block::Table(
                ["", ""].map(String::from).to_vec(),
                vec![
                    vec!["date".into(), i.date],
                    vec!["seed".into(), seed.to_string()],
                    vec![
                        "machine".into(),
                        if i.shards.is_empty() {
                            format!("{}, {} cores used", i.cpu, i.cores)
                        } else {
                            let hosts: std::collections::BTreeSet<&str> =
                                i.shards.iter().map(|s| s.host.as_str()).collect();
                            format!(
                                "{} shards on {} host{}, {} cores in all (merged on {})",
                                i.shards.len(),
                                hosts.len(),
                                if hosts.len() == 1 { "" } else { "s" },
                                i.cores,
                                i.cpu
                            )
                        },
                    ],
                    vec!["BLAS".into(), i.blas],
                    vec!["shallow".into(), i.version],
                    vec!["wall time".into(), format!("{:.1} s", i.wall_s)],
                ],
            ));
            for (date, command) in &i.resumed {
                b.push(Block::Para(format!("Resumed {date}: `{command}`")));
            }
            if !i.shards.is_empty() {
                b.push(Block::Para(format!(
                    "Trained in {} shards, merged as above; the wall time is the longest shard's, the cores all shards' together:",
                    i.shards.len()
                )));
                b.push(Block::Table(
                    [
                        "shard",
                        "host",
                        "Slurm job",
                        "cores",
                        "runs",
                        "wall time",
                        "ended",
                    ]
                    .map(String::from)
                    .to_vec(),
                    i.shards
                        .iter()
                        .map(|s| {
                            vec![
                                s.shard.label(),
                                s.host.clone(),
                                s.slurm_job.clone().unwrap_or_else(|| "-".into()),
                                s.cores.to_string(),
                                s.runs.len().to_string(),
                                format!("{:.1} s", s.wall_s),
                                s.date.clone(),
                            ]
                        })
                        .collect(),
                ));
                if let Some(first) = i.shards.iter().find(|s| !s.command.is_empty()) {
                    b.push(Block::Para(format!(
                        "The command of shard {}:",
                        first.shard.label()
                    )));
                    b.push(Block::Pre(first.command.clone()));
                }
            }
        }
        Err(_) => b.push(Block::Para(format!(
            "Seed {seed}. (No {} here: the command line and machine were not recorded.)",
            results::RUN_INFO
        ))),
    }
    b
}

/// Reads the results of `spec`'s runs from their folders in `dir`, in plan order.
fn read_results(dir: &Path, spec: &SweepSpec) -> Result<Vec<RunResult>> {
    spec.configs()?
        .iter()
        .map(|c| read_json::<RunResult>(&dir.join(&c.name).join("result.json")))
        .collect()
}

/// Draws `dir/summary.png` for a sweep: validation accuracy against its axes.
pub fn draw_sweep_summary(dir: &Path, spec: &SweepSpec, results: &[RunResult]) -> Result<()> {
    let axes = spec.axes();
    let best = ranking(results).first().copied();
    let points: Vec<Point> = spec
        .points()
        .into_iter()
        .zip(results)
        .enumerate()
        .filter(|(_, (_, r))| {
            matches!(
                r.status,
                crate::train::Status::Done | crate::train::Status::Pruned
            )
        })
        .map(|(i, (p, r))| Point {
            coords: p.into_iter().map(|(_, v)| v).collect(),
            val_acc: r.val_acc,
            series: usize::from(r.status == crate::train::Status::Pruned),
            chosen: Some(i) == best,
        })
        .collect();
    let pruned = points.iter().any(|p| p.series == 1);
    summary_png(
        &dir.join("summary.png"),
        &format!(
            "Sweep over {}",
            axes.iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(" x ")
        ),
        &axes,
        if pruned {
            &["trained to the top budget", "pruned (at its last rung)"]
        } else {
            &["runs"]
        },
        &points,
    )
}

/// Draws `dir/summary.png` for a search: coarse and fine values against
/// validation accuracy, the values trained in the final stage ringed.
pub fn draw_search_summary(dir: &Path, s: &SearchSummary) -> Result<()> {
    let axis = Axis::parse(&s.axis)?;
    let mut points = Vec::new();
    for (k, (rs, vs)) in [(&s.coarse, &s.coarse_values), (&s.fine, &s.fine_values)]
        .into_iter()
        .enumerate()
    {
        for (r, v) in rs.iter().zip(vs) {
            if matches!(
                r.status,
                crate::train::Status::Done | crate::train::Status::Pruned
            ) {
                points.push(Point {
                    coords: vec![Value::Num(*v)],
                    val_acc: r.val_acc,
                    series: k,
                    chosen: s.final_values.contains(v),
                });
            }
        }
    }
    summary_png(
        &dir.join("summary.png"),
        &match &s.pruning {
            Some(p) => format!("Search over {} by {p}", s.axis),
            None => format!("Coarse-to-fine search over {}", s.axis),
        },
        &[axis],
        &[s.pruning.as_deref().unwrap_or("coarse"), "fine"],
        &points,
    )
}

fn sweep_blocks(dir: &Path) -> Result<Vec<Block>> {
    if !dir.join("sweep.json").exists() {
        // A part of an experiment or of the bonus (a1, a2, a recipe, the
        // ablation): its runs are reported in the whole's report.
        let whole = dir.ancestors().skip(1).take(2).find(|d| {
            matches!(
                crate::folder::kind_of(d),
                Some(FolderKind::Experiment | FolderKind::Bonus)
            )
        });
        if let Some(whole) = whole {
            bail!(
                "{} is a part of {}, whose report covers its runs: run `shallow report {}`",
                dir.display(),
                whole.display(),
                whole.display()
            );
        }
    }
    let spec: SweepSpec = read_json(&dir.join("sweep.json"))?;
    let results = read_results(dir, &spec).with_context(|| {
        format!(
            "{} is an unfinished sweep: finish it with --resume first",
            dir.display()
        )
    })?;
    draw_sweep_summary(dir, &spec, &results)?;
    let rungs = crate::sweep::halving::RungRecord::read(dir)?;
    let mut columns = axis_columns(&spec);
    if let Some(r) = &rungs {
        columns.push(r.budget_column());
    }
    let mut b = vec![Block::Heading(
        1,
        format!("Sweep: {}", spec.describe_axes()),
    )];
    b.push(Block::Para(format!(
        "{} runs. Fixed settings: {}.",
        results.len(),
        fixed_settings(&spec)
    )));
    if let Some(&i) = ranking(&results).first() {
        let r = &results[i];
        let point = &spec.points()[i];
        let at: Vec<String> = point
            .iter()
            .map(|(a, v)| format!("{} {}", a.name(), v.label()))
            .collect();
        b.push(Block::Para(format!(
            "Best by validation accuracy: **{}** ({}): validation {}%, test {}%.",
            r.name,
            at.join(", "),
            pct(r.val_acc),
            pct(r.test_acc)
        )));
    }
    b.push(Block::Images(vec![(
        PathBuf::from("summary.png"),
        if rungs.is_some() {
            "validation accuracy against the swept settings (a pruned run's at its last rung)"
                .into()
        } else {
            "validation accuracy against the swept settings".into()
        },
    )]));
    if let Some(r) = &rungs {
        b.extend(rung_blocks(dir, r, &results)?);
    }
    b.push(Block::Heading(2, "What was run".into()));
    b.extend(run_info_blocks(dir, spec.base.seed));
    b.push(Block::Heading(2, "Results, best first".into()));
    b.push(results_block(&results, &columns));
    b.push(Block::Heading(2, "The best runs".into()));
    for &i in ranking(&results).iter().take(3) {
        b.push(Block::Images(run_images(dir, Path::new(&results[i].name))));
    }
    Ok(b)
}

/// `s` with its first letter in capitals.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// A pruned search's section: its plan, the work it did against the full
/// sweep's, and the rung picture (drawn here).
fn rung_blocks(
    dir: &Path,
    record: &crate::sweep::halving::RungRecord,
    results: &[RunResult],
) -> Result<Vec<Block>> {
    super::rungs::rungs_png(&dir.join("rungs.png"), record)?;
    let ladder = &record.ladder;
    let steps_done: usize = results.iter().map(|r| r.steps).sum();
    let steps_full: usize = results.len() * results.iter().map(|r| r.steps).max().unwrap_or(0);
    let stopped = results
        .iter()
        .filter(|r| r.status != crate::train::Status::Done)
        .count();
    let grouped = |n: usize| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    Ok(vec![
        Block::Heading(2, "Pruning".into()),
        Block::Para(format!(
            "{}. {} of {} configurations stopped at a rung (pruned, or diverged); the runs trained {} \
             configuration-steps, {:.0}% of the {} that training every configuration to {} takes. A rung \
             ranks by validation accuracy (ties: lower validation cost, then plan order).",
            capitalised(&ladder.describe()),
            stopped,
            results.len(),
            grouped(steps_done),
            100.0 * steps_done as f64 / steps_full.max(1) as f64,
            grouped(steps_full),
            ladder.unit.count(ladder.max)
        )),
        Block::Images(vec![(
            PathBuf::from("rungs.png"),
            "validation accuracy at each rung: pruned configurations end with a cross".into(),
        )]),
    ])
}

/// The settings a sweep does not vary, e.g. `mlp 50, cyclic 1e-5..0.1 for 3
/// cycles of n_s 900, batch 100, 45,000 training / 5,000 validation images, seed 1`.
fn fixed_settings(spec: &SweepSpec) -> String {
    use crate::util::short_number as n;
    let axes = spec.axes();
    let varies = |a: Axis| axes.contains(&a);
    let s = &spec.base;
    let mut parts = Vec::new();
    if !varies(Axis::Hidden) {
        let w = s.widths();
        parts.push(if w.is_empty() {
            "linear".to_string()
        } else {
            format!(
                "mlp {}",
                w.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            )
        });
    }
    if !varies(Axis::Loss) {
        parts.push(format!("loss {}", s.loss.name()));
    }
    if !varies(Axis::Lambda) {
        parts.push(format!("lambda {}", n(s.lambda)));
    }
    parts.extend(schedule_settings(s, &varies));
    if let (Some(st), false) = (s.steps, varies(Axis::Steps)) {
        parts.push(format!("{st} steps"));
    }
    if !varies(Axis::Batch) {
        parts.push(format!("batch {}", s.batch));
    }
    parts.push(format!(
        "split {}{}",
        s.split.describe(),
        s.split.n_train.map_or(String::new(), |t| format!(
            ", the first {t} training images"
        ))
    ));
    if !varies(Axis::Seed) {
        parts.push(format!("seed {}", s.seed));
    }
    parts.extend(bonus_settings(s, &varies));
    parts.join(", ")
}

/// The schedule's part of [`fixed_settings`], leaving out what `varies`.
fn schedule_settings(
    s: &crate::train::TrainSettings,
    varies: &dyn Fn(Axis) -> bool,
) -> Vec<String> {
    use crate::train::ScheduleKind;
    use crate::util::short_number as n;
    let mut parts = Vec::new();
    match s.schedule {
        ScheduleKind::Cyclic => {
            let bounds = match (varies(Axis::EtaMin), varies(Axis::EtaMax)) {
                (false, false) => format!("cyclic eta {}..{}", n(s.eta_min), n(s.eta_max)),
                (true, false) => format!("cyclic eta up to {}", n(s.eta_max)),
                (false, true) => format!("cyclic eta from {}", n(s.eta_min)),
                (true, true) => "cyclic eta".to_string(),
            };
            let cycles = if varies(Axis::Cycles) {
                String::new()
            } else {
                format!(
                    " for {} cycle{}",
                    s.cycles,
                    if s.cycles == 1 { "" } else { "s" }
                )
            };
            let ns = if varies(Axis::Ns) {
                String::new()
            } else {
                format!(" of n_s {}", s.resolved_ns())
            };
            parts.push(format!("{bounds}{cycles}{ns}"));
        }
        ScheduleKind::Fixed | ScheduleKind::Decay => {
            if !varies(Axis::Eta) {
                parts.push(format!("eta {}", n(s.eta)));
            }
            if s.schedule == ScheduleKind::Decay && !varies(Axis::DecayFactor) {
                parts.push(format!(
                    "x{} every {} epochs",
                    n(s.decay_factor),
                    s.decay_every
                ));
            }
            if !varies(Axis::Epochs) && s.steps.is_none() {
                parts.push(format!("{} epochs", s.epochs));
            }
        }
    }
    parts
}

/// The bonus's part of [`fixed_settings`] (shuffling, precision, momentum,
/// dropout, smoothing, batch norm, augmentation, test-time flips, ensembles),
/// where they differ from plain SGD and are not varied.
fn bonus_settings(s: &crate::train::TrainSettings, varies: &dyn Fn(Axis) -> bool) -> Vec<String> {
    use crate::util::short_number as n;
    let mut parts = Vec::new();
    if s.shuffle {
        parts.push("shuffled every epoch".into());
    }
    if s.precision != crate::nn::Precision::F32 {
        let precision = format!("{:?}", s.precision).to_lowercase();
        parts.push(format!("precision {precision}"));
    }
    let on = |a: Axis, set: bool| set && !varies(a);
    if on(Axis::Momentum, s.momentum > 0.0) {
        parts.push(format!("momentum {}", n(s.momentum)));
    }
    if on(Axis::Dropout, s.dropout > 0.0) {
        parts.push(format!("dropout {}", n(s.dropout)));
    }
    if on(Axis::LabelSmoothing, s.label_smoothing > 0.0) {
        parts.push(format!("label smoothing {}", n(s.label_smoothing)));
    }
    if on(Axis::BatchNorm, s.batch_norm) {
        parts.push("batch norm".into());
    }
    let augment = crate::data::Augment {
        flip: s.augment.flip && !varies(Axis::Flip),
        translate: if varies(Axis::Translate) {
            0
        } else {
            s.augment.translate
        },
        pad: s.augment.pad,
    };
    if augment.is_on() {
        parts.push(format!("augmentation: {}", augment.describe()));
    }
    if on(Axis::Tta, s.tta) {
        parts.push("test-time flips".into());
    }
    if on(Axis::Snapshots, s.snapshots > 0) {
        parts.push(format!("snapshot ensemble of the last {}", s.snapshots));
    }
    if on(Axis::Member, s.member > 0) {
        parts.push(format!("ensemble member {}", s.member));
    }
    parts
}

fn search_blocks(dir: &Path) -> Result<Vec<Block>> {
    let s: SearchSummary = read_json(&dir.join("summary.json"))?;
    draw_search_summary(dir, &s)?;
    let mut b = vec![Block::Heading(
        1,
        match &s.pruning {
            Some(p) => format!("Search over {} by {p}", s.axis),
            None => format!("Coarse-to-fine search over {}", s.axis),
        },
    )];
    let seed = read_json::<SweepSpec>(&dir.join("coarse/sweep.json")).map_or(1, |c| c.base.seed);
    b.extend(search_section(dir, &s, Path::new("")));
    b.push(Block::Heading(2, "What was run".into()));
    b.extend(run_info_blocks(dir, seed));
    Ok(b)
}

/// The blocks describing a search whose folder is `rel` inside the report's folder.
fn search_section(dir: &Path, s: &SearchSummary, rel: &Path) -> Vec<Block> {
    use crate::util::short_number as n;
    let mut b = Vec::new();
    let answer = match s.best_final() {
        Some((r, v)) => format!(
            "Chosen {} **{}** (the best validation accuracy of the final runs): test accuracy **{}%** \
             (validation {}%) after {} steps.",
            s.axis,
            n(v),
            pct(r.test_acc),
            pct(r.val_acc),
            r.steps
        ),
        None => "Every final run diverged.".into(),
    };
    let pruned = match &s.pruning {
        Some(folder) => crate::sweep::halving::RungRecord::read(&dir.join(rel).join(folder))
            .ok()
            .flatten()
            .map(|r| (folder.clone(), r)),
        None => None,
    };
    if let Some((folder, record)) = &pruned {
        b.push(Block::Para(format!(
            "{}: {} values of {} log-uniform at random in {}..{}. Final: the best {} by validation accuracy, \
             trained on more data. {answer}",
            capitalised(&record.ladder.describe()),
            s.coarse.len(),
            s.axis,
            n(s.fine_range.0),
            n(s.fine_range.1),
            s.finals.len()
        )));
        let picture = rel.join(folder).join("rungs.png");
        if super::rungs::rungs_png(&dir.join(&picture), record).is_ok() {
            b.push(Block::Images(vec![(
                picture,
                "validation accuracy at each rung: pruned values end with a cross".into(),
            )]));
        }
    } else {
        b.push(Block::Para(format!(
            "Coarse: {} values of {} log-uniform at random; fine: {} values in {}..{}, centred on the best coarse value {}; \
             final: the best {} of both stages by validation accuracy, trained on more data. {answer}",
            s.coarse.len(),
            s.axis,
            s.fine.len(),
            n(s.fine_range.0),
            n(s.fine_range.1),
            n(s.best_coarse_value),
            s.finals.len()
        )));
    }
    b.push(Block::Images(vec![(
        rel.join("summary.png"),
        if pruned.is_some() {
            format!("validation accuracy against {}: every value at its last rung, and the values trained in the final stage (ringed)", s.axis)
        } else {
            format!("validation accuracy against {}: coarse, fine, and the values trained in the final stage (ringed)", s.axis)
        },
    )]));
    let column = |vs: &[f64]| -> results::Columns {
        vec![(s.axis.clone(), vs.iter().map(|&v| n(v)).collect())]
    };
    b.push(Block::Heading(3, "Final runs".into()));
    b.push(results_block(&s.finals, &column(&s.final_values)));
    if let Some(&best) = ranking(&s.finals).first() {
        b.push(Block::Images(run_images(
            dir,
            &rel.join("final").join(&s.finals[best].name),
        )));
    }
    let first = s.pruning.as_deref().unwrap_or("coarse");
    for (stage, rs, vs) in [
        (first, &s.coarse, &s.coarse_values),
        ("fine", &s.fine, &s.fine_values),
    ] {
        if rs.is_empty() {
            continue;
        }
        b.push(Block::Heading(3, format!("{stage} stage, best first")));
        let mut columns = column(vs);
        if let Some((_, record)) = pruned.as_ref().filter(|_| stage == first) {
            columns.push(record.budget_column());
        }
        b.push(results_block(rs, &columns));
    }
    b
}

fn run_blocks(dir: &Path) -> Result<Vec<Block>> {
    let r: RunResult = read_json(&dir.join("result.json"))?;
    let c: crate::train::output::SavedConfig = read_json(&dir.join("config.json"))?;
    let mut b = vec![Block::Heading(
        1,
        format!("{}: {}", r.name, c.config.describe()),
    )];
    b.push(Block::Para(format!(
        "Train {}%, validation {}%, **test {}%** after {} steps ({:.1} s, {:.3} ms per step); {:?}.",
        pct(r.train_acc),
        pct(r.val_acc),
        pct(r.test_acc),
        r.steps,
        r.wall_s,
        r.ms_per_step,
        r.status
    )));
    if let Ok(e) = read_json::<crate::train::model::Evaluation>(&dir.join("evaluation.json")) {
        b.push(Block::Para(format!(
            "Evaluated (shallow evaluate) on {}: **{}%** of {} test images right (loss {:.4}).",
            e.data,
            pct(e.accuracy),
            e.images,
            e.loss
        )));
    }
    b.push(Block::Images(run_images(dir, Path::new(""))));
    b.push(Block::Heading(2, "Settings".into()));
    b.push(Block::Pre(serde_json::to_string_pretty(&c)?));
    Ok(b)
}

/// The experiment's headline numbers against the assignments' references.
fn headline(dir: &Path, timings: Option<&Timings>) -> Vec<Block> {
    let mut rows = Vec::new();
    let refs_a1 = ["28-29.5", "39.1", "39.0", "37.5"];
    let refs_a2 = ["46", "47.5"];
    for (file, what, refs) in [
        ("a1/summary.json", "A1", &refs_a1[..]),
        ("a2/summary.json", "A2", &refs_a2[..]),
    ] {
        if let Ok(s) = read_json::<Summary>(&dir.join(file)) {
            for (r, reference) in s.runs.iter().zip(refs) {
                rows.push(vec![
                    format!(
                        "{what} lambda {}, {}",
                        crate::util::short_number(r.lambda),
                        r.schedule
                    ),
                    pct(r.test_acc),
                    format!("{reference}%"),
                ]);
            }
        }
    }
    if let Ok(s) = read_json::<SearchSummary>(&dir.join("search/summary.json")) {
        if let Some((r, v)) = s.best_final() {
            rows.push(vec![
                format!(
                    "search: best {} {}, {} steps on 49,000 images",
                    s.axis,
                    crate::util::short_number(v),
                    r.steps
                ),
                pct(r.test_acc),
                "51.5-52%".into(),
            ]);
        }
    }
    let mut b = Vec::new();
    if rows.is_empty() {
        return b;
    }
    b.push(Block::Heading(2, "Summary".into()));
    let total = timings.map_or(String::new(), |t| {
        format!(
            " Everything below took {:.1} s on {} ({} cores).",
            t.total_s, t.cpu, t.cores
        )
    });
    b.push(Block::Para(format!(
        "Test accuracy of each experiment against the assignments' reference figures.{total}"
    )));
    b.push(Block::Table(
        ["run", "test accuracy %", "reference"]
            .map(String::from)
            .to_vec(),
        rows,
    ));
    b
}

fn experiment_blocks(dir: &Path) -> Result<Vec<Block>> {
    let mut b: Vec<Block> = vec![Block::Heading(
        1,
        "shallow: Assignments 1 and 2 on CIFAR-10".into(),
    )];
    let timings: Option<Timings> = read_json(&dir.join("timings.json")).ok();
    b.extend(headline(dir, timings.as_ref()));
    let mut found = 0;
    if let Ok(a1) = read_json::<Summary>(&dir.join("a1/summary.json")) {
        found += 1;
        b.extend(a1_blocks(dir, &a1));
    }
    if let Ok(a2) = read_json::<Summary>(&dir.join("a2/summary.json")) {
        found += 1;
        b.extend(a2_blocks(dir, &a2));
    }
    if let Ok(summary) = read_json::<SearchSummary>(&dir.join("search/summary.json")) {
        found += 1;
        draw_search_summary(&dir.join("search"), &summary)?;
        b.push(Block::Heading(
            2,
            format!("Coarse-to-fine {} search", summary.axis),
        ));
        b.extend(search_section(dir, &summary, Path::new("search")));
    }
    if let Ok(reports) = read_json::<Vec<gradcheck::Report>>(&dir.join("gradcheck.json")) {
        found += 1;
        b.extend(gradcheck_blocks(&reports));
    }
    if found == 0 {
        bail!(
            "{} holds no results of `shallow experiment`: run `shallow experiment all --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    b.extend(environment_blocks(timings.as_ref()));
    Ok(b)
}

/// Assignment 1's section: the table, then each run's curves and weights.
fn a1_blocks(dir: &Path, a1: &Summary) -> Vec<Block> {
    let mut b = Vec::new();
    b.push(Block::Heading(
        2,
        "Assignment 1: one-layer softmax classifier".into(),
    ));
    b.push(Block::Para(
        "Mini-batch gradient descent, batch 100, 40 epochs, trained on data_batch_1, validated on data_batch_2, \
         tested on test_batch; W initialised from N(0, 0.01^2)."
            .into(),
    ));
    b.push(summary_table(a1));
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
    b
}

/// Assignment 2's section: the table, then each run's curves.
fn a2_blocks(dir: &Path, a2: &Summary) -> Vec<Block> {
    let mut b = Vec::new();
    b.push(Block::Heading(
        2,
        "Assignment 2: two-layer network with cyclical learning rates".into(),
    ));
    b.push(Block::Para("m = 50, lambda = 0.01, batch 100, eta cycling between 1e-5 and 1e-1, split as in Assignment 1.".into()));
    b.push(summary_table(a2));
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
    b
}

/// The gradient checks' section: a table of errors per check.
fn gradcheck_blocks(reports: &[gradcheck::Report]) -> Vec<Block> {
    let mut b = Vec::new();
    b.push(Block::Heading(2, "Gradient checks".into()));
    b.push(Block::Para(
        "Analytic gradients (f64) against centred finite differences of the cost; relative error \
         |g_a - g_n| / max(eps, |g_a| + |g_n|), maximum over the entries of each parameter."
            .into(),
    ));
    for r in reports {
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
    b
}

/// The environment: CPU, cores, BLAS, version, data and each stage's time.
fn environment_blocks(timings: Option<&Timings>) -> Vec<Block> {
    let mut b = Vec::new();
    b.push(Block::Heading(2, "Environment".into()));
    if let Some(t) = timings {
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
    b
}

fn summary_table(s: &Summary) -> Block {
    let (header, rows) = s.table();
    Block::Table(header.map(String::from).to_vec(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::plan::SweepSettings;
    use crate::train::TrainSettings;

    /// Every setting a sweep fixes away from plain SGD is in its report's
    /// fixed-settings line; an axis is not.
    #[test]
    fn the_fixed_settings_line_names_the_bonus_settings() {
        let spec = SweepSettings {
            lambdas: Some(vec![0.1, 0.01]),
            hidden: Some(vec![20]),
            momentum: Some(0.9),
            dropout: Some(0.2),
            label_smoothing: Some(0.1),
            batch_norm: Some(true),
            flip: Some(true),
            tta: Some(true),
            ..Default::default()
        }
        .spec(TrainSettings::sweep_default())
        .unwrap();
        let line = fixed_settings(&spec);
        for want in [
            "mlp 20",
            "momentum 0.9",
            "dropout 0.2",
            "label smoothing 0.1",
            "batch norm",
            "augmentation: flips",
            "test-time flips",
        ] {
            assert!(line.contains(want), "{want:?} missing from: {line}");
        }
        assert!(!line.contains("lambda"), "the axis is not fixed: {line}");
    }
}
